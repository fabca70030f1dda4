//! `docs/mail.md` documents every symbol with its default weight and floor.

use caldicott_mail::Verdict;
use caldicott_mail::symbols::SYMBOLS;

#[test]
fn every_symbol_is_documented_with_its_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/mail.md");
    let doc = std::fs::read_to_string(path).expect("docs/mail.md");
    for d in SYMBOLS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", d.name)))
            .unwrap_or_else(|| panic!("{} is not in docs/mail.md", d.name));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            cells[2].parse::<f64>().ok(),
            Some(d.weight),
            "weight of {}: {row}",
            d.name
        );
        let floor = if d.min_verdict == Verdict::Accept {
            ""
        } else {
            d.min_verdict.as_str()
        };
        assert_eq!(cells[3], floor, "floor of {}: {row}", d.name);
    }
}

#[test]
fn the_documented_configuration_is_the_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/mail.md");
    let doc = std::fs::read_to_string(path).expect("docs/mail.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("closed");
    let documented = caldicott_mail::MailConfig::from_toml_str(&doc[start..end]).unwrap();
    let mut expected = caldicott_mail::MailConfig::default();
    expected.symbols.insert(
        "ATTACH_MACRO_OFFICE".into(),
        caldicott_mail::config::SymbolOverride {
            weight: Some(10.0),
            min_verdict: Some(Verdict::Quarantine),
        },
    );
    assert_eq!(documented, expected);
}
