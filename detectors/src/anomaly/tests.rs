//! Unit tests of the detectors on synthetic series.
