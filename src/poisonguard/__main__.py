"""``python -m poisonguard``: the same CLI as the ``poisonguard`` console script."""

from poisonguard.cli import main

if __name__ == "__main__":
    main()
