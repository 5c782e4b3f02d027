//! Every constant that ARCHITECTURE.md or README.md quotes in the form
//! `` `NAME` (value) `` (for example `` `STREAMING_GAP` (50 µs) ``) has that
//! value in its `const` in `src/`: the docs may not drift from the code.

use std::path::Path;

/// A quantity in base units (ns, or bytes, or a plain count) with its kind.
#[derive(Debug, PartialEq)]
enum Value {
    Nanos(u128),
    Bytes(u128),
    Count(u128),
}

/// Parses a doc value such as `50 µs`, `10 ms`, `8 KiB`, `64`.
fn doc_value(text: &str) -> Option<Value> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u128 = text[..split].parse().ok()?;
    Some(match text[split..].trim() {
        "" => Value::Count(n),
        "ns" => Value::Nanos(n),
        "µs" => Value::Nanos(n * 1_000),
        "ms" => Value::Nanos(n * 1_000_000),
        "s" => Value::Nanos(n * 1_000_000_000),
        "B" => Value::Bytes(n),
        "KiB" => Value::Bytes(n * 1024),
        "MiB" => Value::Bytes(n * 1024 * 1024),
        _ => return None,
    })
}

/// Evaluates a `const` initialiser of the simple forms the code uses:
/// `Duration::from_micros(50)` (and millis, secs), `256 * 1024`, `64`.
fn code_value(expr: &str) -> Option<Value> {
    let expr = expr.trim();
    for (prefix, scale) in [
        ("Duration::from_nanos(", 1),
        ("Duration::from_micros(", 1_000),
        ("Duration::from_millis(", 1_000_000),
        ("Duration::from_secs(", 1_000_000_000),
    ] {
        if let Some(rest) = expr.strip_prefix(prefix) {
            let n: u128 = rest.strip_suffix(')')?.trim().parse().ok()?;
            return Some(Value::Nanos(n * scale));
        }
    }
    let product: Option<u128> = expr
        .split('*')
        .map(|f| f.trim().replace('_', "").parse::<u128>().ok())
        .product();
    let product = product?;
    // Sizes are written as `N * 1024`; plain numbers are counts, and a
    // size doc value compares equal to its byte count.
    Some(if expr.contains("1024") {
        Value::Bytes(product)
    } else {
        Value::Count(product)
    })
}

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("read source"));
        }
    }
}

/// The initialiser of `const NAME: T = …;` in the sources.
fn const_expr<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    let at = src.find(&format!("const {name}:"))?;
    let rest = &src[at..];
    let eq = rest.find('=')?;
    let end = rest.find(';')?;
    Some(&rest[eq + 1..end])
}

#[test]
fn quoted_constants_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut src = String::new();
    sources(&root.join("src"), &mut src);
    let mut checked = 0;
    for doc in ["ARCHITECTURE.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("read the docs");
        for (i, _) in text.match_indices('`') {
            let rest = &text[i + 1..];
            let Some(close) = rest.find('`') else {
                continue;
            };
            let name = &rest[..close];
            let is_const = name.len() > 2
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && name.contains('_');
            let after = &rest[close + 1..];
            let (true, Some(paren)) = (is_const, after.strip_prefix(" (")) else {
                continue;
            };
            let Some(value) = paren.split(')').next().and_then(doc_value) else {
                continue;
            };
            let expr = const_expr(&src, name).unwrap_or_else(|| {
                panic!("{doc} quotes `{name}`, which no `const` in src/ defines")
            });
            let code =
                code_value(expr).unwrap_or_else(|| panic!("cannot evaluate `{name}` = {expr}"));
            assert_eq!(
                code, value,
                "{doc} quotes `{name}` as {value:?}; the code has {expr}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} quoted constants found");
}
