from playbook.cli import entry

entry()
