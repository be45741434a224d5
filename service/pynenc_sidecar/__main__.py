from pynenc_sidecar.cli import main

raise SystemExit(main())
