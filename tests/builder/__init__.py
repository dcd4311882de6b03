"""Tests of builds: archives, the build jail, its network and limits, activation (orvad/builder/)."""
