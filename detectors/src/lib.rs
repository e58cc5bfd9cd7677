//! Pure detectors.
