"""The input's sound in a written video: copied as it is, or re-encoded where it cannot go.

    track = AudioTrack.open("clip.mkv", ".mp4")    # None when the input has no audio
    out = track.attach(container, start_s=0)       # once per output file (segment)
    out.mux_until(Fraction(3, 2))                  # sound up to 1.5 s, behind the pictures
    out.finish()                                   # before the container closes
    track.close()

Packets are copied without re-encoding when the output container is known to carry the
codec in a file that players open (AAC, MP3, AC-3, Opus, FLAC... in MP4; Opus and Vorbis in
WebM; whatever Matroska, MOV and AVI accept). Otherwise, PCM from a camera's MKV into MP4 or
AAC into WebM for example, the sound is decoded and re-encoded, to AAC (Opus for WebM), and a
warning line says so. Times are output seconds: 0 is the first picture of the recording.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av

from realtime.types import SinkError

log = logging.getLogger(__name__)

# Codecs that these containers carry so that common players open the file; anything else is
# re-encoded. FFmpeg's MP4 muxer accepts PCM since 6.1 ("ipcm"), which almost no player reads.
_PLAYABLE = {
    ".mp4": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}),
    ".webm": frozenset({"opus", "vorbis"}),
}
_ENCODERS = {".webm": "libopus"}  # everything else gets AAC
# Layouts by channel count, for inputs that say only "2 channels" (PCM in MKV often does).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


class AudioTrack:
    """The first audio stream of ``audio_path``, read once, shared by every output file."""

    def __init__(self, input_container: Any, suffix: str):
        self._input = input_container
        self.in_stream = input_container.streams.audio[0]
        self._suffix = suffix
        playable = _PLAYABLE.get(suffix)
        self.encoder: str | None = None
        """None: packets are copied; else the encoder that re-encodes them (decided for the
        first output file, kept for the others)."""
        if playable is not None and self.in_stream.codec_context.name not in playable:
            self._re_encode()
        # Output pictures start at 0 where the input's first picture had its own start time;
        # shifting the sound by that keeps lips and voice together.
        video = input_container.streams.video[0] if input_container.streams.video else None
        self.start_s = Fraction(video.start_time * video.time_base) if (
            video and video.start_time) else Fraction(0)
        self._items: Iterator[tuple[Fraction, Any]] | None = None
        self._pending: tuple[Fraction, Any] | None = None

    def _re_encode(self) -> None:
        self.encoder = _ENCODERS.get(self._suffix, "aac")
        log.warning("audio: %s cannot go into %s as it is; re-encoded to %s",
                    self.in_stream.codec_context.name, self._suffix,
                    "Opus" if self.encoder == "libopus" else "AAC")

    @classmethod
    def open(cls, audio_path: str | None, suffix: str) -> AudioTrack | None:
        """The track of ``audio_path`` for an output ending in ``suffix``; None: no sound."""
        if audio_path is None:
            return None
        try:
            input_container = av.open(audio_path)
        except (av.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot read the audio of {audio_path}: {exc}") from exc
        if not input_container.streams.audio:
            input_container.close()
            return None
        return cls(input_container, suffix.lower())

    def attach(self, container: Any, start_s: Fraction) -> AudioOut:
        """Adds this sound to ``container``, whose time 0 is ``start_s`` of the recording."""
        stream = None
        if self.encoder is None:
            try:
                stream = container.add_stream_from_template(self.in_stream)
            except ValueError:  # this muxer does not take the codec at all
                if self._items is not None:
                    raise  # an earlier file took it: the muxer cannot change its mind
                self._re_encode()
        if stream is None:
            ctx = self.in_stream.codec_context
            stream = container.add_stream(self.encoder, rate=48000 if self.encoder == "libopus"
                                          else ctx.sample_rate)
            layout = ctx.layout.name
            if layout.endswith("channels"):
                layout = _LAYOUTS.get(ctx.channels, "stereo")
            stream.layout = layout
            stream.codec_context.time_base = Fraction(1, stream.codec_context.sample_rate)
        return AudioOut(self, container, stream, start_s)

    def next_item(self, end_s: Fraction) -> tuple[Fraction, Any] | None:
        """The next packet (copying) or frame (re-encoding) that starts before ``end_s``."""
        if self._items is None:
            self._items = self._packets() if self.encoder is None else self._frames()
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

    def _frames(self) -> Iterator[tuple[Fraction, Any]]:
        for frame in self._input.decode(self.in_stream):
            if frame.pts is not None:
                yield frame.pts * frame.time_base - self.start_s, frame

    def close(self) -> None:
        self._input.close()


class AudioOut:
    """The sound of one output file: its stream, and where in the recording it starts."""

    def __init__(self, track: AudioTrack, container: Any, stream: Any, start_s: Fraction):
        self._track, self._container, self.stream = track, container, stream
        self._start_s = start_s
        self._priming: int | None = None

    def mux_until(self, end_s: Fraction) -> None:
        """Muxes the sound that starts before ``end_s`` seconds of the recording."""
        while (item := self._track.next_item(end_s)) is not None:
            start_s, packet_or_frame = item
            if start_s < self._start_s:
                continue  # sound from before the first picture has nothing to go with
            if self._track.encoder is None:
                self._copy(start_s, packet_or_frame)
            else:
                self._encode(start_s, packet_or_frame)

    def _copy(self, start_s: Fraction, packet: Any) -> None:
        # Shifted by the input's own start and this file's place in the recording.
        offset = round((start_s - self._start_s) / packet.time_base) - packet.pts
        packet.pts += offset
        packet.dts += offset
        packet.stream = self.stream
        self._container.mux(packet)

    def _encode(self, start_s: Fraction, frame: Any) -> None:
        rate = self.stream.codec_context.sample_rate
        frame.pts = round((start_s - self._start_s) * rate)
        frame.time_base = Fraction(1, rate)
        self._mux_encoded(self.stream.encode(frame))

    def _mux_encoded(self, packets: list[Any]) -> None:
        for packet in packets:
            # AAC starts 1024 samples early (its priming). A fragmented MP4 has no edit list
            # to say so, and its muxer then stretches the first picture instead; starting the
            # sound at 0 leaves it 21 ms late, well below what anyone notices.
            if self._priming is None:
                self._priming = max(0, -packet.pts)
            packet.pts += self._priming
            packet.dts += self._priming
            self._container.mux(packet)

    def finish(self) -> None:
        """Flushes the encoder (re-encoding only)."""
        if self._track.encoder is not None:
            self._mux_encoded(self.stream.encode(None))
