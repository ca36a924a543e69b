//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `given`, if one is close enough to be a likely typo. Ranked by edit
/// distance counting a swap of neighbours as one edit (`tpc` → `tcp`), then by similarity.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    let mut best: Option<(usize, f64, &'a str)> = None;
    for candidate in candidates {
        let candidate_lower = candidate.to_ascii_lowercase();
        if candidate_lower == given_lower {
            return Some(candidate);
        }
        let distance = strsim::osa_distance(&given_lower, &candidate_lower);
        let score = strsim::jaro_winkler(&given_lower, &candidate_lower);
        // Close by edit distance (scaled to the length), or by similarity for long names.
        let allowed = (candidate_lower.len().max(given_lower.len()) / 4).clamp(1, 3);
        let close = distance <= allowed || score >= 0.9;
        let better = best.is_none_or(|(d, s, _)| distance < d || (distance == d && score > s));
        if close && better {
            best = Some((distance, score, candidate));
        }
    }
    best.map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["destination", "precedence", "route", "httpReqTimeout"];
        assert_eq!(did_you_mean("destinaton", fields), Some("destination"));
        assert_eq!(did_you_mean("routes", fields), Some("route"));
        assert_eq!(did_you_mean("httpreqtimeout", fields), Some("httpReqTimeout"));
        assert_eq!(did_you_mean("zzz", fields), None);
        assert_eq!(
            did_you_mean("tpc", ["http", "https", "grpc", "http2", "tcp", "mongo"]),
            Some("tcp")
        );
        assert_eq!(
            did_you_mean("weigth", ["destination", "labels", "weight"]),
            Some("weight")
        );
        assert_eq!(
            did_you_mean("EgresRule", ["RouteRule", "EgressRule", "DestinationPolicy"]),
            Some("EgressRule")
        );
        assert_eq!(
            did_you_mean("rule", ["RouteRule", "EgressRule", "DestinationPolicy"]),
            None
        );
        assert_eq!(
            did_you_mean("handler", ["RouteRule", "EgressRule", "DestinationPolicy"]),
            None
        );
    }
}
