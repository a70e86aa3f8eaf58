from wmw_link.cli import main

main()
