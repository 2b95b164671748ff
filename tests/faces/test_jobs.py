"""What facezoo-restore reads and writes (src/faces/jobs.py): one job per photo or video, and a user's files
kept safe (never an input overwritten, nothing written into the input folder unless asked)."""

import pytest

from facezoo.faces.jobs import Job, plan_jobs
from facezoo.utils.errors import ConfigError


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "clip.mp4", "notes.txt"):
        (folder / name).write_bytes(b"x")
    return folder


def test_a_folder_gives_one_job_per_photo_and_video_in_name_order(photos, tmp_path):
    out = tmp_path / "out"
    assert plan_jobs(str(photos), str(out)) == [
        Job(photos / "a.png", out / "a.png", "image"),
        Job(photos / "b.jpg", out / "b.jpg", "image"),
        Job(photos / "clip.mp4", out / "clip.mp4", "video"),
    ]
    renamed = plan_jobs(str(photos), str(out), ext="png")
    assert [j.target.name for j in renamed] == ["a.png", "b.png", "clip.mp4"]


def test_one_file_goes_to_a_file_or_into_a_folder(photos, tmp_path):
    assert plan_jobs(str(photos / "a.png"), str(tmp_path / "x.jpg")) == [
        Job(photos / "a.png", tmp_path / "x.jpg", "image")
    ]
    assert plan_jobs(str(photos / "clip.mp4"), str(tmp_path / "out")) == [
        Job(photos / "clip.mp4", tmp_path / "out" / "clip.mp4", "video")
    ]
    assert plan_jobs(str(photos), str(tmp_path / "film.mp4"), frames=True) == [
        Job(photos, tmp_path / "film.mp4", "frames")
    ]


@pytest.mark.parametrize(
    ("source", "target", "options", "message"),
    [
        ("nothing", "out", {}, r"input=.*nothing: no such file or folder"),
        ("photos/notes.txt", "out", {}, r"input=.*notes.txt: not a photo or video"),
        ("photos", "out.png", {}, r"output=out.png: input is a folder, so output must be a folder"),
        ("photos/a.png", "out.mp4", {}, r"output=out.mp4: expected an image file"),
        ("photos", "photos/restored", {}, r"inside the input folder .*photos; give another output folder"),
        (
            "photos/a.png",
            "photos/a.png",
            {"overwrite": True},
            r"output=.*a.png: it would overwrite the input",
        ),
        ("photos", "out", {"ext": "gif"}, r"ext=gif: expected an image format"),
    ],
)
def test_unsafe_or_unclear_requests_are_refused(
    photos, tmp_path, monkeypatch, source, target, options, message
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        plan_jobs(source, target, **options)


def test_overwrite_allows_the_input_folder_but_never_an_input(photos):
    jobs = plan_jobs(str(photos), str(photos / "restored"), overwrite=True)
    assert [j.target.parent for j in jobs] == [photos / "restored"] * 3


def test_one_file_may_be_restored_beside_itself(photos):
    job = plan_jobs(str(photos / "a.png"), str(photos / "a_restored.png"))[0]
    assert job.target == photos / "a_restored.png"
