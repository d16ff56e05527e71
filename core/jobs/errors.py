"""The refusals a job action ends in, and the job list being out of reach (a full disk, a locked or unreadable
database). All are UserErrors: the CLI and the studio show their message as it is, never a traceback."""

from __future__ import annotations

from core.errors import UserError


class JobNotFound(UserError, LookupError):
    """No job with that id (or unique id prefix) in this workspace."""


class JobStateError(UserError, ValueError):
    """The action does not apply to the job in its current state (message says why and what to do)."""


class OutputBusy(JobStateError):
    """Another job that is queued or running writes (or reads) what this job would write: two writers on one file
    end in duplicated or lost rows, a reader of a file being rewritten sees part of it. The second is refused,
    naming the first."""

    def __init__(self, path: str, job_id: str, status: str, reading: bool = False):
        doing = "read" if reading else "written"
        super().__init__(
            f"{path} is being {doing} by job {job_id} ({status}); wait for it to end, stop it, or give this job "
            "another output"
        )
        self.code = "job_output_read" if reading else "job_output_busy"
        self.params = {"path": path, "job": job_id, "status": status}
        self.job_id = job_id


class StoreUnavailable(UserError, RuntimeError):
    """The job list (the workspace's SQLite file) cannot be read or written right now; the message says why."""

    def __init__(self, message: str, folder: str = ""):
        super().__init__(message)
        self.folder = folder
        self.code = "store_unavailable"
        self.params = {"folder": folder, "error": message}


class DiskFull(StoreUnavailable):
    """No space left where something had to be written (the job list, a dataset, a log), named by folder so a
    person knows where to free space. A StoreUnavailable too: the job list is one of the things that fill up."""

    def __init__(self, folder: str, what: str = ""):
        where = f" while writing {what}" if what else ""
        self.summary = f"disk full: no space left in {folder}{where}"  # one line, as a job's reason
        super().__init__(f"{self.summary}; free space there, then try again", folder)
        self.code = "disk_full"
        self.params = {"folder": folder}
