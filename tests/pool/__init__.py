"""Tests of workers, pools, the autoscaler and the frame protocol (orvad/pool/)."""
