"""Job runner on pool hosts: staging, detached runs, one status call per host, downloads, failures, death, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_vast.dispatch import JobRunner, RemoteJob, RunnerSettings
from snakemake_executor_plugin_vast.offers import JobNeeds
from snakemake_executor_plugin_vast.pool import HostPool
from snakemake_executor_plugin_vast.ssh import load_private_key
from tests.fake_vast.sshd import can_isolate
from tests.vast.conftest import fast_pool_settings

pytestmark = pytest.mark.ssh

DOUBLE = (
    "mkdir -p out logs && python -c \"import json; d = json.load(open('in/{n}.json')); "
    "open('out/{n}.txt', 'w').write(str(2 * d['x']))\" && echo log-{n} > logs/{n}.log"
)


@pytest.fixture
def local_workdir(tmp_path: Path) -> Path:
    work = tmp_path / "local"
    (work / "workflow").mkdir(parents=True)
    (work / "workflow" / "Snakefile").write_text("# sources shipped to every host\n")
    (work / "in").mkdir()
    for n in range(4):
        (work / "in" / f"{n}.json").write_text(f'{{"x": {n + 10}}}')
    return work


@pytest.fixture
def make_runner(stub_vast, ssh_keypair, local_workdir: Path, tmp_path: Path, host_wheel_infos):
    made: list[tuple[HostPool, JobRunner]] = []
    if not can_isolate():
        pytest.skip("runner tests need a private /workspace per host (root + unshare)")

    def factory(
        max_instances: int = 1,
        unreachable_timeout: float = 30.0,
        remote_root: str = "/workspace/density-engine",
        boot_timeout: float = 20.0,
        snakemake_version: str | None = None,
    ) -> JobRunner:
        settings = fast_pool_settings(
            run_id="0a0b0c42", max_instances=max_instances, boot_timeout=boot_timeout,
            unreachable_timeout=unreachable_timeout,
            log_dir=local_workdir / ".snakemake" / "auxiliary" / "vast-logs" / "0a0b0c42" / "instances",
        )  # fmt: skip
        pool = HostPool(stub_vast, settings, load_private_key(ssh_keypair.private_path), ssh_keypair.public_key)
        pool.start()
        runner = JobRunner(
            pool,
            RunnerSettings(
                run_id="0a0b0c42",
                remote_root=remote_root,
                remote_python="python3",
                local_workdir=local_workdir,
                snakemake_version=snakemake_version or __import__("snakemake").__version__,
                unreachable_timeout=unreachable_timeout,
                poll_workers=2,
            ),
            lambda: ["workflow/Snakefile"],
            wheels=host_wheel_infos,
        )
        made.append((pool, runner))
        return runner

    yield factory
    for pool, runner in made:
        runner.cancel_all()
        runner.close()
        pool.close()
    assert stub_vast.live() == []


def job(n: int, command: str | None = None) -> RemoteJob:
    return RemoteJob(
        key=f"{n}-a1", name=f"double {n}", command=command or DOUBLE.format(n=n), inputs=[f"in/{n}.json"],
        outputs=[f"out/{n}.txt"], optional_outputs=[f"logs/{n}.log"], needs=JobNeeds(gpus=1),
    )  # fmt: skip


def wait_all(runner: JobRunner, count: int, timeout: float = 60.0) -> list[RemoteJob]:
    done: list[RemoteJob] = []
    deadline = time.monotonic() + timeout
    while len(done) < count:
        assert time.monotonic() < deadline, f"only {len(done)} of {count} jobs finished: {runner.jobs}"
        done += runner.poll()
        time.sleep(0.3)
    return done


def test_jobs_share_one_booted_host_and_outputs_come_back(make_runner, stub_vast, local_workdir: Path) -> None:
    runner = make_runner(max_instances=1)
    calls: list[int] = []
    original = runner._query_states
    runner._query_states = lambda host, keys: (calls.append(len(keys)), original(host, keys))[1]
    for n in range(3):
        runner.submit(job(n))
    done = wait_all(runner, 3)
    assert sorted(j.state for j in done) == ["succeeded"] * 3, [j.error for j in done]
    for n in range(3):
        assert (local_workdir / "out" / f"{n}.txt").read_text() == str(2 * (n + 10))
        assert (local_workdir / "logs" / f"{n}.log").read_text() == f"log-{n}\n"
    assert len(stub_vast.instances) == 1  # one boot for three jobs
    assert all(c == 1 for c in calls)  # one GPU: one running job per status call on that host
    host = runner.pool.hosts[0]
    assert host.bootstrapped and "density-engine==0." in host.bootstrapped
    # the remote files live in the host's private /workspace, never in the local one
    remote = stub_vast.instances[1000].host.workspace_dir / "density-engine" / "runs" / "0a0b0c42" / "work" / "out"
    assert sorted(p.name for p in remote.iterdir()) == ["0.txt", "1.txt", "2.txt"]


def test_one_status_call_per_host_for_many_jobs(make_runner, stub_vast, local_workdir: Path) -> None:
    stub_vast.offers = [o.__class__(**{**o.__dict__, "num_gpus": 3}) for o in stub_vast.offers]
    runner = make_runner(max_instances=1)
    calls: list[int] = []
    original = runner._query_states
    runner._query_states = lambda host, keys: (calls.append(len(keys)), original(host, keys))[1]
    for n in range(3):
        runner.submit(job(n, f"sleep 1.5 && {DOUBLE.format(n=n)} && echo gpu=$CUDA_VISIBLE_DEVICES >> logs/{n}.log"))
    done = wait_all(runner, 3)
    assert [j.state for j in done] == ["succeeded"] * 3
    assert max(calls) == 3  # three jobs on one host polled by a single SSH command
    gpus = sorted((local_workdir / "logs" / f"{n}.log").read_text().split()[-1] for n in range(3))
    assert gpus == ["gpu=0", "gpu=1", "gpu=2"]  # jobs sharing the host got disjoint GPUs


def test_failed_job_logs_are_fetched_and_reported(make_runner, local_workdir: Path) -> None:
    runner = make_runner()
    runner.submit(job(0, "echo preparing; echo 'boom: bad parameter' >&2; exit 3"))
    [failed] = wait_all(runner, 1)
    assert failed.state == "failed" and failed.exit_code == 3
    assert "exit code 3" in failed.error and "instance 1000" in failed.error
    assert "boom: bad parameter" in failed.error
    assert failed.aux_logs and "boom" in (local_workdir / failed.aux_logs[0]).read_text()


def test_exit_zero_without_output_is_a_failure(make_runner, local_workdir: Path) -> None:
    runner = make_runner(remote_root="/workspace/it's a $(odd) root")  # every remote path is quoted
    runner.submit(job(1, "true"))
    [failed] = wait_all(runner, 1)
    assert failed.state == "failed" and "output is missing" in failed.error and "out/1.txt" in failed.error
    assert runner.pool.hosts[0].bootstrapped  # the venv install and the job ran under the odd root
    assert not (local_workdir / "out" / "1.txt").exists()


def test_host_dying_mid_job_sends_it_to_another_host(make_runner, stub_vast, local_workdir: Path) -> None:
    """A host that dies under a job is a host fault, not a job failure: the job runs again on another machine (no
    Snakemake retry consumed); the dead host's container log is fetched before it is destroyed."""
    runner = make_runner(unreachable_timeout=1.0)
    runner.submit(job(0, f"sleep 2 && {DOUBLE.format(n=0)}"))
    wait_running(runner)
    stub_vast.kill(1000, status="offline")  # offline may recover: the unreachable grace period applies
    [done] = wait_all(runner, 1)
    assert done.state == "succeeded" and done.host is not None and done.host.instance_id == 1001, done.error
    assert len(done.requeues) == 1 and "died while the job ran" in done.requeues[0]
    assert "instance-1000.container.log" in done.requeues[0]  # fetched before the destroy
    assert (local_workdir / "out" / "0.txt").read_text() == "20"
    log_file = local_workdir / ".snakemake" / "auxiliary" / "vast-logs" / "0a0b0c42" / "instances"
    assert "container log of instance 1000" in (log_file / "instance-1000.container.log").read_text()
    deadline = time.monotonic() + 10
    while 1000 in stub_vast.live():
        assert time.monotonic() < deadline, "dead host not destroyed"
        time.sleep(0.1)
    assert 500 in runner.pool.blacklist


def test_cancel_kills_the_remote_process_group(make_runner, stub_vast) -> None:
    runner = make_runner()
    runner.submit(job(0, "sleep 120 & sleep 120; wait"))
    deadline = time.monotonic() + 30
    while not any(j.state == "running" for j in runner.jobs.values()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    host = runner.pool.hosts[0]
    count = "ps -eo args | grep -c '^sleep 120' || true"
    assert host.conn.exec(count).stdout.strip() == "2"
    runner.cancel_all()
    assert host.conn.exec(count).stdout.strip() == "0"


def wait_running(runner: JobRunner, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(j.state == "running" for j in runner.jobs.values()):
        assert time.monotonic() < deadline, f"no job started: {runner.jobs}"
        time.sleep(0.1)


def test_install_is_skipped_when_the_host_has_this_version(make_runner, stub_vast, caplog) -> None:
    """A host whose venv already holds this exact density-engine version (a kept instance, a later run) gets no wheel
    upload and no install: one probe decides."""
    runner = make_runner()
    runner.submit(job(0))
    assert [j.state for j in wait_all(runner, 1)] == ["succeeded"]
    host = runner.pool.hosts[0]
    host.bootstrapped = None  # as for a new run that meets this host: the probe must find the installed version
    uploads: list[str] = []
    original_put = host.conn.put_many
    host.conn.put_many = lambda pairs, **kw: (uploads.extend(r for _, r in pairs), original_put(pairs, **kw))[1]
    caplog.set_level("INFO", logger="snakemake_executor_plugin_vast.dispatch")
    runner.submit(job(1))
    assert [j.state for j in wait_all(runner, 1)] == ["succeeded"]
    assert not [r for r in uploads if r.endswith(".whl")]  # no wheel went up
    assert "already has density-engine 0.1.0+g" in caplog.text
    assert len(stub_vast.instances) == 1


def test_the_same_setup_error_on_two_machines_stops_renting(make_runner, stub_vast) -> None:
    """A controller Snakemake the hosts cannot install (here 0.0.1; the fake hosts have no package index) fails the
    set-up the same way on every machine: after the second machine the runner stops with that error (pip's ERROR
    line in it) instead of renting one paid host after another."""
    runner = make_runner(snakemake_version="0.0.1", max_instances=1)
    runner.submit(job(0))
    [failed] = wait_all(runner, 1)
    assert failed.state == "failed"
    assert "the same set-up error happened on 2 different machines" in (runner.fatal_error or "")
    assert "pip install snakemake==0.0.1 failed" in failed.error and "ERROR:" in failed.error
    assert len(stub_vast.instances) == 2  # no third paid boot
    deadline = time.monotonic() + 10
    while stub_vast.live():
        assert time.monotonic() < deadline, "hosts with the set-up error were not destroyed"
        time.sleep(0.1)


def test_declared_env_vars_reach_the_job_in_a_private_file(make_runner, stub_vast, local_workdir: Path) -> None:
    secret = "s3cr3t 'quoted' $(not run)"
    remote = job(0, 'mkdir -p out && printf %s "$DE_TEST_TOKEN" > out/0.txt')
    remote.env = {"DE_TEST_TOKEN": secret}
    runner = make_runner()
    runner.submit(remote)
    assert [j.state for j in wait_all(runner, 1)] == ["succeeded"]
    assert (local_workdir / "out" / "0.txt").read_text() == secret
    jobdir = stub_vast.instances[1000].host.workspace_dir / "density-engine" / "runs" / "0a0b0c42" / "jobs" / "0-a1"
    assert (jobdir / "env").stat().st_mode & 0o777 == 0o600
    assert secret not in (jobdir / "run.sh").read_text()  # never on a command line


def test_close_fails_a_job_waiting_for_a_boot_at_once(make_runner, stub_vast) -> None:
    stub_vast.stuck_machines = {500, 501, 502, 503, 504, 505}
    runner = make_runner(boot_timeout=120.0)
    runner.submit(job(0))
    deadline = time.monotonic() + 10
    while not stub_vast.instances:  # the job waits for the stuck host to boot
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runner.close()
    [failed] = runner.collect_finished()
    assert failed.state == "failed" and "shutting down" in failed.error
    runner.pool.close()
    assert stub_vast.live() == []  # the booting instance was destroyed on the way out


def test_host_with_broken_ssh_that_vast_reports_running_is_left_for_another(make_runner, stub_vast) -> None:
    """sshd gone while the API still says running: the next job's staging fails there, the job goes to another host
    (the broken one is avoided, and released to make room), and it succeeds; nothing fails for Snakemake."""
    runner = make_runner(max_instances=1)
    runner.submit(job(0))
    assert [j.state for j in wait_all(runner, 1)] == ["succeeded"]
    broken = runner.pool.hosts[0]
    stub_vast.kill(broken.instance_id, status="running")
    runner.submit(job(1))
    [done] = wait_all(runner, 1)
    assert done.state == "succeeded", done.error
    assert done.host is not None and done.host.instance_id != broken.instance_id
    assert done.requeues and f"staging on instance {broken.instance_id}" in done.requeues[0]
    deadline = time.monotonic() + 10
    while broken.instance_id in stub_vast.live():
        assert time.monotonic() < deadline, "the broken host was never released"
        time.sleep(0.1)
