from tttgui.cli import main

raise SystemExit(main())
