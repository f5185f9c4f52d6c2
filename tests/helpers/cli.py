"""Running the command line in-process, and checking that a mistake is one line on stderr."""

from kdtemp.cli import main


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("kdtemp: error: ") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
