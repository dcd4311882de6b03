"""Jobs (issue 23): durable background invocations (orvad/jobs/service.py)."""

from orvad.jobs.service import Job, JobService

__all__ = ["Job", "JobService"]
