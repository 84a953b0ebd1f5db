"""manage.py make_samples [DIR]: the files the README's and docs/API.md's examples upload.

Writes short clips with picture and sound (test.mp4, clip.mp4, talk.mp4), made
by the bundled FFmpeg from its built-in test patterns through the service's own
runner, and avatar.png (drawn with Pillow), so a first render needs no video
of one's own. Files already there are kept unless --force is given.
"""

from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from PIL import Image, ImageDraw

from renders.media import ffmpeg


@dataclass(frozen=True)
class Sample:
    name: str
    pattern: str  # an FFmpeg test source
    seconds: float
    rate: int
    tone: str  # the sound: an FFmpeg sine source's options
    about: str

    def args(self, output: str) -> list[str]:
        return [
            "-f", "lavfi", "-i", f"{self.pattern}=s=1280x720:r={self.rate}:d={self.seconds}",
            "-f", "lavfi", "-i", f"sine={self.tone}:r=48000:d={self.seconds}",
            "-map", "0:v", "-map", "1:a", "-ac", "2",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(self.rate),
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-shortest", "-f", "mp4", output,
        ]


SAMPLES = [
    Sample("test.mp4", "testsrc2", 5, 30, "f=440", "moving test pattern, a 440 Hz tone"),
    Sample("clip.mp4", "smptehdbars", 4, 25, "f=660", "colour bars, a 660 Hz tone"),
    Sample("talk.mp4", "testsrc", 8, 30, "f=330:beep_factor=4", "a frame counter, a beep every second"),
]
AVATAR = "avatar.png"


def draw_avatar(path: Path, size: int = 256):
    """A head-and-shoulders silhouette on a coloured disc, with transparent corners."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, size - 1, size - 1), fill=(58, 123, 213, 255))
    mask = Image.new("L", (size, size), 0)
    figure = ImageDraw.Draw(mask)
    figure.ellipse((size * 0.33, size * 0.18, size * 0.67, size * 0.52), fill=255)  # head
    figure.ellipse((size * 0.16, size * 0.58, size * 0.84, size * 1.1), fill=255)  # shoulders
    disc = Image.new("L", (size, size), 0)
    ImageDraw.Draw(disc).ellipse((0, 0, size - 1, size - 1), fill=255)
    mask = Image.composite(mask, Image.new("L", (size, size), 0), disc)  # keep the shoulders inside the disc
    image.paste((240, 244, 250, 255), (0, 0), mask)
    image.save(path, format="PNG")


class Command(BaseCommand):
    help = ("Write sample clips (test.mp4, clip.mp4, talk.mp4: a few seconds, picture and sound) and an "
            "avatar.png for the documented curl examples into DIR (default: the current directory).")

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", default=".", help="where to write them (made if missing)")
        parser.add_argument("--force", action="store_true", help="replace files of the same names")

    def handle(self, *args, directory=".", force=False, **options):
        target = Path(directory).resolve()
        target.mkdir(parents=True, exist_ok=True)
        for sample in SAMPLES:
            if self.keep(target / sample.name, force):
                continue
            partial = f".{sample.name}.part"
            result = ffmpeg.run(sample.args(partial), cwd=target, timeout=120, log_name=f".{sample.name}.log")
            if not result.ok:
                (target / partial).unlink(missing_ok=True)
                raise CommandError(f"FFmpeg could not make {sample.name}:\n{result.stderr_tail[-2000:]}")
            (target / partial).replace(target / sample.name)
            self.stdout.write(f"wrote {target / sample.name} ({sample.seconds:g} s, {sample.about})")
        if not self.keep(target / AVATAR, force):
            draw_avatar(target / AVATAR)
            self.stdout.write(f"wrote {target / AVATAR} (256x256 PNG)")

    def keep(self, path: Path, force: bool) -> bool:
        if path.exists() and not force:
            self.stdout.write(f"kept {path} (already there; --force replaces it)")
            return True
        return False
