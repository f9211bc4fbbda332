from poisonguard.cli import main

main()
