"""Group-wise splits and the UCF50 layout scan."""

import pytest

from tvn_tf.data import layout, splits


def _check_partition(split, num_groups):
    sides = [set(split.train), set(split.validation), set(split.test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sides[0] | sides[1] | sides[2] == set(range(1, num_groups + 1))
    assert split.train and split.test


@pytest.mark.parametrize("num_validation_groups", [0, 3])
def test_every_leave_one_group_out_fold_is_disjoint(num_validation_groups):
    for fold in range(1, 26):
        split = splits.leave_one_group_out(fold, num_validation_groups=num_validation_groups)
        _check_partition(split, 25)
        assert split.test == (fold,)
        assert len(split.validation) == num_validation_groups


@pytest.mark.parametrize("num_validation_groups", [0, 2])
def test_every_five_fold_split_is_disjoint(num_validation_groups):
    tests = []
    for fold in range(1, 6):
        split = splits.group_k_fold(fold, num_validation_groups=num_validation_groups)
        _check_partition(split, 25)
        tests.append(split.test)
    assert tests == [tuple(range(1 + 5 * i, 6 + 5 * i)) for i in range(5)]


def test_validation_follows_test_group_cyclically():
    assert splits.leave_one_group_out(25, num_validation_groups=2).validation == (1, 2)
    assert splits.leave_one_group_out(3, num_groups=7, num_validation_groups=1) == (
        splits.GroupSplit(train=(1, 2, 5, 6, 7), validation=(4,), test=(3,))
    )


def test_bad_fold_is_rejected():
    with pytest.raises(ValueError, match="fold must be in"):
        splits.leave_one_group_out(26)
    with pytest.raises(ValueError, match="fold must be in"):
        splits.group_k_fold(0)


def test_scan_labels_from_folder_and_reports_bad_names(tmp_path):
    for rel in [
        "Billiards/v_Billards_g01_c01.avi",
        "PullUps/v_Pullup_g25_c04.avi",
        "PullUps/readme.txt",
        "PullUps/.hidden.avi",
        "stray.avi",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    scan = layout.scan_videos(tmp_path)
    assert scan.classes == ("Billiards", "PullUps")
    by_path = {f.path: f for f in scan.files}
    assert set(by_path) == {
        "Billiards/v_Billards_g01_c01.avi",
        "PullUps/v_Pullup_g25_c04.avi",
        "PullUps/readme.txt",
        "stray.avi",
    }
    assert by_path["PullUps/v_Pullup_g25_c04.avi"] == layout.VideoFile(
        "PullUps/v_Pullup_g25_c04.avi", "PullUps", 1, 25, 4
    )
    assert "does not match" in by_path["PullUps/readme.txt"].problem
    assert "not inside a class folder" in by_path["stray.avi"].problem


def test_scan_with_class_list(tmp_path):
    (tmp_path / "YoYo").mkdir()
    (tmp_path / "YoYo" / "v_YoYo_g02_c01.avi").write_bytes(b"x")
    (tmp_path / "Extra").mkdir()
    (tmp_path / "Extra" / "v_Extra_g02_c01.avi").write_bytes(b"x")
    scan = layout.scan_videos(tmp_path, classes=layout.UCF50_CLASSES)
    assert len(scan.classes) == 50 and scan.classes == tuple(sorted(layout.UCF50_CLASSES))
    assert [v.label for v in scan.videos] == [49]
    assert "not in the class list" in scan.rejected[0].problem
