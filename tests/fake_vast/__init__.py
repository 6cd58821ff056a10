"""Test doubles for Vast.ai: real sshd hosts on loopback and a fake Vast REST server."""
