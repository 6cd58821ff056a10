#!/bin/bash
# One job on a host (written per job by the executor; values are shell-quoted): record the pid, run the command in the
# run's working directory with the run's venv first on PATH, record the exit code atomically.
echo $$ > @JOBDIR@/pid.tmp && mv @JOBDIR@/pid.tmp @JOBDIR@/pid
cd @WORKDIR@ || exit 97
# the image's PATH (non-interactive SSH sessions lack it), then the run's venv in front
image=$(tr '\0' '\n' < /proc/1/environ 2>/dev/null | sed -n 's/^PATH=//p' | head -n 1)
export PATH=@VENV_BIN@:"${image:+$image:}$PATH"
# bash re-reads ~/.bashrc in any shell it thinks sshd started (SSH_CLIENT set, shell level 1), which can reset PATH
# inside the rule's shell; the job is detached from SSH, so drop those markers
unset SSH_CLIENT SSH2_CLIENT SSH_CONNECTION SSH_TTY
export PYTHONNOUSERSITE=1
export CUDA_VISIBLE_DEVICES=@CUDA@
. @JOBDIR@/env || exit 96
(
@COMMAND@
)
code=$?
echo $code > @JOBDIR@/exit_code.tmp && mv @JOBDIR@/exit_code.tmp @JOBDIR@/exit_code
