//! Which runs are traced: a head decision from the trace id, as
//! OpenTelemetry's `traceidratio` makes it, overruled for every failed run.

/// The share of runs traced before their outcome is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    ratio: f64,
}

impl Sampler {
    pub fn ratio(ratio: f64) -> Sampler {
        Sampler {
            ratio: ratio.clamp(0.0, 1.0),
        }
    }

    /// The sampler `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`)
    /// name. Runs have no parent, so each `parentbased_*` sampler decides
    /// as its root sampler does. `Err` names what is not understood.
    pub fn from_env(name: &str, arg: Option<&str>) -> Result<Sampler, String> {
        match name.trim() {
            "always_on" | "parentbased_always_on" => Ok(Sampler::ratio(1.0)),
            "always_off" | "parentbased_always_off" => Ok(Sampler::ratio(0.0)),
            "traceidratio" | "parentbased_traceidratio" => match arg.map(str::trim) {
                None | Some("") => Ok(Sampler::ratio(1.0)),
                Some(arg) => match arg.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(Sampler::ratio(r)),
                    _ => Err(format!(
                        "OTEL_TRACES_SAMPLER_ARG `{arg}` is not a ratio between 0 and 1"
                    )),
                },
            },
            other => Err(format!(
                "OTEL_TRACES_SAMPLER `{other}` is not one of always_on, always_off, \
                 traceidratio, parentbased_always_on, parentbased_always_off, \
                 parentbased_traceidratio"
            )),
        }
    }

    /// The head decision for a trace: the same trace id always gets the
    /// same answer, so a ratio holds across nodes.
    pub fn head(&self, trace_id: &[u8; 16]) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let bound = (self.ratio * (1u64 << 63) as f64) as u64;
        (u64::from_be_bytes(low) >> 1) < bound
    }

    /// Whether a finished run's trace is exported: failures always are.
    pub fn keep(&self, head: bool, healthy: bool) -> bool {
        head || !healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_ratios() {
        assert_eq!(
            Sampler::from_env("always_on", None),
            Ok(Sampler::ratio(1.0))
        );
        assert_eq!(
            Sampler::from_env("parentbased_always_off", None),
            Ok(Sampler::ratio(0.0))
        );
        assert_eq!(
            Sampler::from_env("traceidratio", Some("0.25")),
            Ok(Sampler::ratio(0.25))
        );
        let err = Sampler::from_env("traceidratio", Some("2")).unwrap_err();
        assert!(err.contains("`2`"), "{err}");
        let err = Sampler::from_env("jaeger_remote", None).unwrap_err();
        assert!(err.contains("jaeger_remote"), "{err}");
    }

    #[test]
    fn ratio_traces_about_its_share_and_failures_always() {
        let sampler = Sampler::ratio(0.25);
        let mut state = 7u64;
        let mut sampled = 0;
        for _ in 0..10_000 {
            let mut id = [0u8; 16];
            for chunk in id.chunks_mut(8) {
                // xorshift: a fixed sequence, so the count is the same every run
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_be_bytes());
            }
            if sampler.head(&id) {
                sampled += 1;
            }
        }
        assert!((2_300..2_700).contains(&sampled), "{sampled} of 10000");
        assert!(!Sampler::ratio(0.0).head(&[0xff; 16]));
        assert!(Sampler::ratio(1.0).head(&[0xff; 16]));
        assert!(sampler.keep(false, false));
        assert!(!sampler.keep(false, true));
    }
}
