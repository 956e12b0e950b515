"""Bare-metal edge host bootstrap with Ansible (ansible-runner)."""
