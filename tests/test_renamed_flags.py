from tvn_tf import renamed_flags


def test_the_new_spelling_is_taken_silently(capsys):
    assert renamed_flags.value("export", "clips_per_video", "eval_clips", None, 2) == 2
    assert capsys.readouterr().err == ""


def test_the_old_spelling_still_works_with_one_warning_line(capsys):
    assert renamed_flags.value("export", "clips_per_video", "eval_clips", 3, 2) == 3
    assert capsys.readouterr().err == (
        "export: warning: --clips_per_video is deprecated; use --eval_clips=3.\n"
    )
