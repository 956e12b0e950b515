from xzctl.cli import main

main()
