"""`python -m fanout`: the same CLI as the `fanout` console script."""

from fanout.cli import app

if __name__ == "__main__":
    app(prog_name="fanout")
