"""Video files and folders of frames <-> streams of (H, W, 3) uint8 RGB frames, for facezoo-restore (PyAV,
with ffmpeg inside its wheel).

Reading: `video_info(path)` and `read_frames(path)` take a video file (.mp4 .mov .avi .webm) or a folder of
image files (sorted by name, read with `read_rgb_uint8`). Frames are decoded one at a time, never all held in
memory, and come upright (a phone video's display rotation is applied). A file ffmpeg cannot open or decode,
or one that ends before the duration its header declares (a truncated download), is a one-line DataError.

Writing: `open_writer(path, fps, audio_from)` gives a `VideoWriter` for a video suffix, a `FrameFolderWriter`
for a folder. A video keeps the fps exactly (frame i at i / fps) and the audio of `audio_from`: its packets
are copied into the new file in step with the video, or re-encoded (AAC; Opus for webm, which takes no AAC)
when the container cannot hold its codec. Codecs: libx264 for mp4/mov, VP9 for webm, MPEG-4 Part 2 for avi,
all yuv420p, whose half-size chroma needs even sizes: an odd width or height gets one more column or row, a
copy of the last. The file is written through `atomic_file` (`.<name>.tmp-<pid>` beside it, the format named
explicitly since that name has no video suffix; renamed on success): an interrupted run leaves no half video.
"""

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facezoo.utils.atomic import atomic_file
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import decoded_size, list_images, read_rgb_uint8, write_image

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm")
FOLDER_FPS = Fraction(25)  # a folder of frames has no rate of its own

# suffix -> (ffmpeg container format, video encoder, encoder options): visually near-lossless settings
_ENCODERS = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium"}),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "medium"}),
    ".avi": ("avi", "mpeg4", {"qmin": "2", "qmax": "2"}),  # quantiser 2 throughout, as ffmpeg's `-q:v 2`
    ".webm": ("webm", "libvpx-vp9", {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4"}),
}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file or a folder of frames holds."""

    fps: Fraction
    size: tuple[int, int]  # (width, height) of the frames as read (upright)
    frame_count: int | None  # as the header says; None when it does not
    has_audio: bool


def _kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    expected = f"expected a video ({' '.join(VIDEO_EXTENSIONS)}) or a folder of frames"
    if not path.exists():
        raise DataError(f"{path}: not found ({expected})")
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise DataError(f"{path}: {expected}")
    return "video"


def _unreadable(path: Path, err: av.error.FFmpegError, what: str = "not a readable video") -> DataError:
    return DataError(f"{path}: {what} ({err.strerror or err.__class__.__name__})")


def _open_video(path: Path) -> av.container.InputContainer:
    """An open input container with at least one video stream (use it as a context manager)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise _unreadable(path, err) from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream")
    return container


def _fps(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise DataError(f"{path}: the video does not say its frame rate")
    return Fraction(rate)


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show `frame` upright (from its display matrix, as ffmpeg does)."""
    return round(frame.rotation / 90) % 4


def _decoded_frames(path: Path, container: av.container.InputContainer) -> Iterator[av.VideoFrame]:
    """The video's frames; a decoding error, or an end before the header's duration, is a DataError."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    period = 1 / _fps(path, stream)
    count, end = 0, 0.0
    try:
        for frame in container.decode(stream):
            count += 1
            if frame.pts is not None:
                end = float(frame.pts * frame.time_base + (frame.duration * frame.time_base or period))
            yield frame
    except av.error.FFmpegError as err:
        raise _unreadable(path, err, f"corrupt video, decoding failed after {count} frames") from None
    declared = None
    if stream.duration and stream.time_base:
        declared = float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base)
    if count == 0 or (declared is not None and end < declared - 1.5 * period):
        said = f" of the {declared:.2f} s its header declares" if declared is not None else ""
        raise DataError(f"{path}: truncated or corrupt video (decoded {count} frames, {end:.2f} s{said})")


def video_info(path: str | Path, folder_fps: Fraction = FOLDER_FPS) -> VideoInfo:
    """What `read_frames(path)` will give; a folder of frames is said to run at `folder_fps`."""
    path = Path(path)
    if _kind(path) == "folder":
        files = list_images(path)
        if not files:
            raise DataError(f"{path}: no image files in the folder (expected frames: .png, .jpg, ...)")
        return VideoInfo(Fraction(folder_fps), decoded_size(files[0]), len(files), has_audio=False)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        first = next(_decoded_frames(path, container))
        size = (first.width, first.height)
        return VideoInfo(
            fps=_fps(path, stream),
            size=size[::-1] if _quarter_turns(first) % 2 else size,
            frame_count=stream.frames or None,
            has_audio=bool(container.streams.audio),
        )


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file or a folder of images, one (H, W, 3) uint8 RGB array at a time."""
    path = Path(path)
    if _kind(path) == "folder":
        files = list_images(path)
        if not files:
            raise DataError(f"{path}: no image files in the folder (expected frames: .png, .jpg, ...)")
        shape = None
        for file in files:
            frame = read_rgb_uint8(file)
            if shape is not None and frame.shape != shape:
                raise DataError(
                    f"{file}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame's "
                    f"{shape[1]}x{shape[0]} (all frames of a video have one size)"
                )
            shape = frame.shape
            yield frame
        return
    with _open_video(path) as container:
        for frame in _decoded_frames(path, container):
            array = frame.to_ndarray(format="rgb24")
            turns = _quarter_turns(frame)
            yield np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _takes(container_format: str, stream: av.audio.stream.AudioStream) -> bool:
    """Whether a `container_format` file can hold `stream`'s packets as they are: a header written in memory
    (ffmpeg's codec list, `supported_codecs`, says yes to Opus in mov, whose muxer then refuses it)."""
    try:
        with av.open(io.BytesIO(), "w", format=container_format) as scratch:
            scratch.add_stream_from_template(stream)
            scratch.start_encoding()
    except (av.error.FFmpegError, ValueError):  # PyAV refuses the codecs not in `supported_codecs` itself
        return False
    return True


class _AudioTrack:
    """The first audio stream of a source video, written into `output` in step with the video: its packets
    copied when `output` can hold its codec, else decoded and re-encoded (AAC; Opus for webm). Timestamps are
    shifted by the source video's start to keep sound and picture in sync with frame 0 written at time 0."""

    def __init__(
        self, source: Path, container: av.container.InputContainer, output: av.container.OutputContainer
    ):
        self._source, self._input, self._output = source, container, output
        audio, video = container.streams.audio[0], container.streams.video[0]
        self._shift = round((video.start_time or 0) * video.time_base / audio.time_base)
        self._copy = _takes(output.format.name, audio)
        if self._copy:
            self.stream = output.add_stream_from_template(audio)
        else:
            opus = output.format.name == "webm"
            rate = 48000 if opus else audio.rate  # libopus takes 48 kHz (and a few lower rates), AAC most
            self.stream = output.add_stream("libopus" if opus else "aac", rate=rate, layout=audio.layout)
        self._packets = container.demux(audio)
        self._next = None  # a packet read but not yet due

    def _mux(self, packet: av.Packet) -> None:
        for attr in ("pts", "dts"):
            if getattr(packet, attr) is not None:
                setattr(packet, attr, getattr(packet, attr) - self._shift)
        if not self._copy:  # (the demuxer's empty end-of-stream packet flushes the decoder)
            for frame in packet.decode():
                self._output.mux(self.stream.encode(frame))
        elif packet.size:
            packet.stream = self.stream
            self._output.mux(packet)

    def mux_until(self, seconds: Fraction | None) -> None:
        """Write the audio packets that start before `seconds` of the new video (None: all that are left)."""
        try:
            while self._packets is not None:
                packet = self._next or next(self._packets, None)
                self._next = None
                if packet is None:  # all of the source's audio is written
                    self._packets = None
                    if not self._copy:
                        self._output.mux(self.stream.encode(None))
                    return
                ticks = packet.pts if packet.pts is not None else packet.dts
                if ticks is not None and packet.duration and ticks + packet.duration <= self._shift:
                    continue  # sound from before the first frame (e.g. AAC's priming packet at -1024)
                later = ticks is not None and seconds is not None
                if later and (ticks - self._shift) * packet.time_base >= seconds:
                    self._next = packet
                    return
                self._mux(packet)
        except av.error.FFmpegError as err:
            raise _unreadable(self._source, err, "could not copy its audio") from None


class VideoWriter:
    """Frames -> a video file at `fps` (see the module's docstring), used as a context manager:

        with VideoWriter("out.mp4", info.fps, audio_from="in.mp4") as writer:
            for frame in frames:
                writer.write(frame)

    The file appears when the block ends without an exception; otherwise nothing is left behind."""

    def __init__(self, path: str | Path, fps: Fraction | int, audio_from: str | Path | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in _ENCODERS:
            raise ConfigError(f"{self.path}: not a video file name (expected {' '.join(VIDEO_EXTENSIONS)})")
        self.fps = Fraction(fps)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.frame_count = 0
        self.size: tuple[int, int] | None = None  # (width, height) written: the frames' size made even
        self._shape: tuple[int, ...] | None = None
        self._video = None
        self._audio: _AudioTrack | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "VideoWriter":
        with contextlib.ExitStack() as stack:
            file = stack.enter_context(atomic_file(self.path))
            self._output = av.open(file, "w", format=_ENCODERS[self.path.suffix.lower()][0])
            stack.push(self._close_output)
            self._stack = stack.pop_all()
        return self

    def _close_output(self, exc_type, exc, tb) -> bool:
        """Write the container's trailer; after an error only release it (the temporary is removed anyway)."""
        if exc_type is None:
            self._output.close()
        else:
            with contextlib.suppress(Exception):
                self._output.close()
        return False

    def _start(self, height: int, width: int) -> None:
        _, codec, options = _ENCODERS[self.path.suffix.lower()]
        self.size = (width + width % 2, height + height % 2)
        self._video = self._output.add_stream(codec, rate=self.fps, options=options)
        self._video.width, self._video.height = self.size
        self._video.pix_fmt = "yuv420p"
        if self.audio_from is not None:
            source = self._stack.enter_context(_open_video(self.audio_from))  # closed with the output
            if source.streams.audio:
                self._audio = _AudioTrack(self.audio_from, source, self._output)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame has the first one's size."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.dtype} {frame.shape}")
        if self._shape is None:
            self._start(*frame.shape[:2])
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"{self.path}: frame {self.frame_count} is {frame.shape}, frame 0 {self._shape}")
        width, height = self.size
        if frame.shape[:2] != (height, width):
            pad = ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0))
            frame = np.pad(frame, pad, mode="edge")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture.pts, picture.time_base = self.frame_count, 1 / self.fps
        if self._audio is not None:
            self._audio.mux_until((self.frame_count + 1) / self.fps)
        self._output.mux(self._video.encode(picture))
        self.frame_count += 1

    def _finish(self) -> None:
        if self._video is None:
            raise ValueError(f"{self.path}: no frames were written")
        self._output.mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.mux_until(None)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:  # the temporary is removed; `path`, if it existed, is left as it was
            return self._stack.__exit__(exc_type, exc, tb)
        with self._stack:  # closes the container, then renames the temporary onto `path`
            self._finish()
        return False


class FrameFolderWriter:
    """Frames -> `folder/000000.png`, `000001.png`, ... (each file written atomically), the same interface as
    VideoWriter; a folder has no fps and no audio. When all frames are written, numbered frames left from an
    earlier, longer output in that folder are removed (other files are left alone)."""

    def __init__(self, folder: str | Path, suffix: str = ".png"):
        self.path = Path(folder)
        self.suffix = suffix
        self.frame_count = 0

    def __enter__(self) -> "FrameFolderWriter":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        write_image(self.path / f"{self.frame_count:06d}{self.suffix}", frame)
        self.frame_count += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            for stale in self.path.glob(f"[0-9]*{self.suffix}"):
                if stale.stem.isdigit() and len(stale.stem) == 6 and int(stale.stem) >= self.frame_count:
                    stale.unlink()
        return False


def open_writer(
    path: str | Path, fps: Fraction | int, audio_from: str | Path | None = None
) -> VideoWriter | FrameFolderWriter:
    """A writer for `path`: a video for a video suffix (with the audio of `audio_from`, when it has any), a
    folder of PNG frames for a name without a suffix or an existing folder."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir():
        return VideoWriter(path, fps, audio_from)
    if path.is_dir() or not path.suffix:
        return FrameFolderWriter(path)
    raise ConfigError(f"{path}: expected a video file name ({' '.join(VIDEO_EXTENSIONS)}) or a folder")
