from amk.cli import main

main()
