"""UIContext.job_action: what a tab's Stop/Resume button says, and that it really stops the job."""

from core.config.selftest import SelftestJob
from studio.ui import UIContext


def test_stop_button_messages_and_effect(workspace):
    ui = UIContext(workspace=workspace)
    assert ui.job_action("stop", None, "training.stopping", "training.no_job") == ui.t("training.no_job")
    assert ui.job_action("stop", "no-such-job", "training.stopping", "training.no_job").startswith("⚠️")
    job = ui.jobs().submit(SelftestJob(steps=500, delay_s=0.05))
    deadline_info = ui.jobs().wait(job, timeout=0.5)
    assert not deadline_info.finished
    msg = ui.job_action("stop", job, "training.stopping", "training.no_job")
    assert job in msg and not msg.startswith("⚠️")
    final = ui.jobs().wait(job, timeout=60)
    assert final.status == "stopped"
