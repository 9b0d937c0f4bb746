"""``python -m conductor_loop`` runs the CLI."""

from conductor_loop.cli import main

if __name__ == "__main__":
    main()
