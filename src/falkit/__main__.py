from falkit.cli.app import main

main()
