"""The input's sound in a written video, copied packet by packet without re-encoding.

    track = AudioTrack.open("clip.mp4", ".mp4")    # None when the input has no audio
    out = track.attach(container, start_s=0)       # once per output file (segment)
    out.mux_until(Fraction(3, 2))                  # sound up to 1.5 s, behind the pictures
    out.finish()                                   # before the container closes
    track.close()

One reader serves every output file, so segments share the sound out between them. A codec
the output's muxer refuses (AAC in WebM) is left out, with a warning. Times are output
seconds: 0 is the first picture of the recording.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from realtime.types import SinkError

log = logging.getLogger(__name__)


class AudioTrack:
    """The first audio stream of ``audio_path``, read once, shared by every output file."""

    def __init__(self, input_container: Any):
        self._input = input_container
        self.in_stream = input_container.streams.audio[0]
        # Output pictures start at 0 where the input's first picture had its own start time;
        # shifting the sound by that keeps lips and voice together.
        video = input_container.streams.video[0] if input_container.streams.video else None
        self.start_s = Fraction(video.start_time * video.time_base) if (
            video and video.start_time) else Fraction(0)
        self._items: Iterator[tuple[Fraction, Any]] | None = None
        self._pending: tuple[Fraction, Any] | None = None

    @classmethod
    def open(cls, audio_path: str | None, suffix: str) -> AudioTrack | None:
        """The track of ``audio_path`` for an output ending in ``suffix``; None: no sound.

        ``suffix`` is unused yet: the output container is asked when each file is opened."""
        if audio_path is None:
            return None
        try:
            input_container = av.open(audio_path)
        except (av.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot read the audio of {audio_path}: {exc}") from exc
        if not input_container.streams.audio:
            input_container.close()
            return None
        return cls(input_container)

    def attach(self, container: Any, start_s: Fraction) -> AudioOut | None:
        """Adds this sound to ``container``, whose time 0 is ``start_s`` of the recording;
        None when the container's muxer does not take the codec."""
        try:
            stream = container.add_stream_from_template(self.in_stream)
        except ValueError as exc:  # the muxer refuses this codec (AAC in WebM)
            log.warning("audio not copied: %s", exc)
            return None
        return AudioOut(self, container, stream, start_s)

    def next_item(self, end_s: Fraction) -> tuple[Fraction, Any] | None:
        """The next packet that starts before ``end_s``, with its start in output seconds."""
        if self._items is None:
            self._items = self._packets()
        item = self._pending or next(self._items, None)
        self._pending = None
        if item is not None and item[0] >= end_s:
            self._pending, item = item, None
        return item

    def _packets(self) -> Iterator[tuple[Fraction, Any]]:
        for packet in self._input.demux(self.in_stream):
            if packet.pts is None or packet.dts is None:
                continue  # the demuxer's empty end-of-stream packet
            yield packet.pts * self.in_stream.time_base - self.start_s, packet

    def close(self) -> None:
        self._input.close()


class AudioOut:
    """The sound of one output file: its stream, and where in the recording it starts."""

    def __init__(self, track: AudioTrack, container: Any, stream: Any, start_s: Fraction):
        self._track, self._container, self.stream = track, container, stream
        self._start_s = start_s

    def mux_until(self, end_s: Fraction) -> None:
        """Muxes the sound that starts before ``end_s`` seconds of the recording."""
        while (item := self._track.next_item(end_s)) is not None:
            start_s, packet = item
            if start_s < self._start_s:
                continue  # sound from before the first picture has nothing to go with
            self._copy(start_s, packet)

    def _copy(self, start_s: Fraction, packet: Any) -> None:
        # Shifted by the input's own start and this file's place in the recording.
        offset = round((start_s - self._start_s) / packet.time_base) - packet.pts
        packet.pts += offset
        packet.dts += offset
        packet.stream = self.stream
        self._container.mux(packet)

    def finish(self) -> None:
        """Nothing is buffered when copying; kept so that every file ends the same way."""
