from hgx.cli import main

main()
