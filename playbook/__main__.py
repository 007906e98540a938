from playbook.cli import main

raise SystemExit(main())
