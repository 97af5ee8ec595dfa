"""The one lifecycle the local stand-ins share: ``with Thing(...) as thing`` starts and stops it."""

from typing import Self


class Running:
    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
