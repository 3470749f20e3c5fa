from trtshim.cli import main

raise SystemExit(main())
