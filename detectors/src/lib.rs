//! Pure detectors: no I/O, no async. [`anomaly`] scores metric series for anomalies (the
//! lookout detector and the Netdata-style baseline); [`nab`] scores detectors the way the
//! Numenta Anomaly Benchmark does; [`timeout`] classifies sampled blocking calls into timeout
//! bugs (missing, too large, too small).

pub mod anomaly;
pub mod nab;
pub mod timeout;
