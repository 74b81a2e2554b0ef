from tvn_tf import cli


def test_the_new_spelling_is_taken_silently(capsys):
    assert cli.renamed("export", "clips_per_video", "eval_clips", None, 2) == 2
    assert capsys.readouterr().err == ""


def test_the_old_spelling_still_works_with_one_warning_line(capsys):
    assert cli.renamed("export", "clips_per_video", "eval_clips", 3, 2) == 3
    assert capsys.readouterr().err == (
        "export: warning: --clips_per_video is deprecated; use --eval_clips=3.\n"
    )


def test_options_are_built_by_keyword_from_the_flags_named_as_fields():
    import dataclasses

    from absl import flags

    @dataclasses.dataclass
    class Options:
        epochs: int = 1
        seed: int = 0
        name: str = "x"

    values = flags.FlagValues()
    flags.DEFINE_integer("epochs", Options.epochs, "", flag_values=values)
    flags.DEFINE_string("unrelated", "u", "", flag_values=values)
    values(["bin", "--epochs=7"])
    assert cli.from_flags(Options, values, name="y") == Options(epochs=7, seed=0, name="y")
