//! The services' `/metrics` (Prometheus text), read by the tests.

use anyhow::Context;

/// The Prometheus text of `GET <base_url>/metrics` (with the operator key, which the
/// gateway and the edge agent ask for).
pub fn metrics_text(base_url: &str) -> anyhow::Result<String> {
    let url = format!("{base_url}/metrics");
    let (name, value) = crate::auth::operator_authorization();
    let mut response = crate::http::agent()
        .get(&url)
        .header(name, value)
        .call()
        .with_context(|| url.clone())?;
    Ok(response.body_mut().read_to_string()?)
}

/// Sums the samples of `name` in Prometheus text (all label sets; 0 when absent).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if let Some(labelled) = rest.strip_prefix('{') {
                labelled.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.trim().split(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_over_labels() {
        let text = "# HELP x y\nrtdash_a_total 3\nrtdash_a_total_more 7\n\
                    rtdash_b{partition=\"0\"} 1.5\nrtdash_b{partition=\"1\"} 2\n";
        assert_eq!(metric_sum(text, "rtdash_a_total"), 3.0);
        assert_eq!(metric_sum(text, "rtdash_b"), 3.5);
        assert_eq!(metric_sum(text, "rtdash_c"), 0.0);
    }
}
