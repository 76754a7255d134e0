"""One exception hierarchy: every error raised on purpose is an XSatclipError and the builtin a
caller expects; the CLI reports those in one line and lets bugs keep their traceback."""

from __future__ import annotations

import inspect

import pytest

from xsatclip import cli, errors


def test_every_error_is_an_xsatclip_error_and_a_builtin():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, Exception) and c.__module__ == errors.__name__]
    assert len(classes) >= 14
    for cls in classes:
        assert issubclass(cls, errors.XSatclipError), cls
        if cls is not errors.XSatclipError:
            builtins = [b for b in cls.__mro__ if b.__module__ == "builtins"
                        and b not in (Exception, BaseException, object)]
            assert builtins, f"{cls.__name__} derives from no builtin error type"


def test_check_choice_names_the_option_and_the_choices():
    assert errors.check_choice("method", "linear", ("nearest", "linear")) == "linear"
    with pytest.raises(errors.InvalidOptionError,
                       match=r"^method='cubic': choose one of \['nearest', 'linear'\]$"):
        errors.check_choice("method", "cubic", ("nearest", "linear"))


def test_missing_dependency_names_the_extra():
    exc = errors.missing_dependency("Parquet files", "parquet", ImportError("no pyarrow"))
    assert isinstance(exc, ImportError)
    assert str(exc) == ("Parquet files needs the 'parquet' extra: pip install "
                        "'xsatclip[parquet]' (no pyarrow)")


def test_cli_reports_xsatclip_errors_in_one_line_and_lets_bugs_through(monkeypatch, capsys):
    def user_error(args):
        raise errors.StoreError("store x is locked\nby pid 1")

    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli.commands, "cmd_models", user_error)
    assert cli.main(["models"]) == 1
    assert capsys.readouterr().err == "xsatclip: error: store x is locked by pid 1\n"
    monkeypatch.setattr(cli.commands, "cmd_models", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["models"])
