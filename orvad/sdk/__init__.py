"""The in-sandbox SDK's channel on orvad's side: ``calls`` (Caller, SdkRouter)."""
