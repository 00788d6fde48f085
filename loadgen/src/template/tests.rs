//! Templates and the distributions of their variables, on 10^6 draws from
//! a fixed seed: Zipf's rank-frequency slope, a uniform chi-square, a
//! Gaussian's mean and deviation; data rows in order and at random; one
//! value per variable per request.

use super::vars::{Drawn, Var};
use super::*;

fn no_files(_: &str) -> Result<Vec<u8>, String> {
    Err("no file".into())
}

fn vars(decls: &[&str]) -> Vars {
    let decls: Vec<String> = decls.iter().map(|s| s.to_string()).collect();
    Vars::parse(&decls, &no_files).unwrap()
}

fn ints(var: &Var, n: usize, seed: u64) -> Vec<i64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut s = Vec::new();
    (0..n)
        .map(|_| match var.draw(&mut rng, &mut s) {
            Drawn::Int(i) => i,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn zipf_ranks_fall_off_with_the_asked_slope() {
    for s in [0.8, 1.1, 1.5] {
        let v = vars(&[&format!("k=int:1..100000:zipf:{s}")]);
        let draws = ints(&v.vars[0], 1_000_000, 42);
        let mut count = vec![0u64; 101];
        for d in draws {
            assert!((1..=100_000).contains(&d));
            if d <= 100 {
                count[d as usize] += 1;
            }
        }
        // Least squares of ln(frequency) on ln(rank), ranks 1..=100.
        let pts: Vec<(f64, f64)> = (1..=100)
            .map(|r| ((r as f64).ln(), (count[r] as f64).ln()))
            .collect();
        let n = pts.len() as f64;
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        assert!((slope + s).abs() < 0.05, "exponent {s}: slope {slope:.3}");
    }
}

#[test]
fn uniform_integers_pass_a_chi_square_test() {
    let v = vars(&["k=int:-50..49"]);
    let mut count = [0u64; 100];
    for d in ints(&v.vars[0], 1_000_000, 7) {
        count[(d + 50) as usize] += 1;
    }
    let expected = 1_000_000.0 / 100.0;
    let chi2: f64 = count
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    // 99 degrees of freedom: the 99.9th percentile is 148.2.
    assert!(chi2 < 148.2, "chi-square {chi2:.1}");
    assert!(count.iter().all(|&c| c > 0), "every value drawn");
}

#[test]
fn gaussian_integers_have_the_asked_mean_and_deviation_within_the_range() {
    let v = vars(&["k=int:0..1000:gaussian:500:50"]);
    let d = ints(&v.vars[0], 1_000_000, 9);
    let n = d.len() as f64;
    let mean = d.iter().sum::<i64>() as f64 / n;
    let sd = (d.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!((mean - 500.0).abs() < 0.5, "{mean}");
    assert!((sd - 50.0).abs() < 0.5, "{sd}");
    let clamped = vars(&["k=int:0..10:gaussian:0:100"]);
    assert!(ints(&clamped.vars[0], 10_000, 1)
        .iter()
        .all(|x| (0..=10).contains(x)));
}

#[test]
fn a_variable_has_one_value_per_request_and_a_sequence_counts_across_connections() {
    let v = vars(&["id=int:1..1000000000", "n=seq:10", "s=str:12"]);
    let t = Template::compile("{{id}}/{{n}}/{{s}}/{{id}}", &v).unwrap();
    let mut conns = [Draws::new(&v, 1), Draws::new(&v, 2)];
    let mut seen = Vec::new();
    for which in [0, 1, 0] {
        let draws = &mut conns[which];
        draws.next_request();
        let mut out = Vec::new();
        t.render(&v, draws, &mut out);
        let text = String::from_utf8(out).unwrap();
        let f: Vec<&str> = text.split('/').collect();
        assert_eq!(f[0], f[3], "one value per request: {text}");
        assert_eq!(f[2].len(), 12);
        assert!(f[2].bytes().all(|b| b.is_ascii_alphanumeric()));
        seen.push(f[1].to_string());
    }
    assert_eq!(seen, ["10", "11", "12"], "one sequence for all connections");
    assert_eq!(t.max_len(&v), 20 + 1 + 20 + 1 + 12 + 1 + 20);
}

#[test]
fn data_rows_in_order_or_at_random_by_column() {
    let files = |p: &str| -> Result<Vec<u8>, String> {
        match p {
            "users.csv" => Ok(b"id,email\n1,a@x.io\n2,b@x.io\n3,c@x.io\n".to_vec()),
            "skus.json" => Ok(br#"["s1", "s2"]"#.to_vec()),
            _ => Err(format!("{p}: not found")),
        }
    };
    let decls = [
        "u=csv:users.csv".to_string(),
        "r=csv:users.csv:random".into(),
        "sku=json:skus.json".into(),
    ];
    let v = Vars::parse(&decls, &files).unwrap();
    let t = Template::compile("{{u.id}}:{{u.email}}:{{sku}}", &v).unwrap();
    let mut d = Draws::new(&v, 3);
    let mut got = Vec::new();
    for _ in 0..4 {
        d.next_request();
        let mut out = Vec::new();
        t.render(&v, &mut d, &mut out);
        got.push(String::from_utf8(out).unwrap());
    }
    assert_eq!(
        got,
        ["1:a@x.io:s1", "2:b@x.io:s2", "3:c@x.io:s1", "1:a@x.io:s2"]
    );
    let random = Template::compile("{{r.id}}", &v).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..100 {
        d.next_request();
        let mut out = Vec::new();
        random.render(&v, &mut d, &mut out);
        ids.insert(out);
    }
    assert_eq!(ids.len(), 3, "every row comes up at random");
}

#[test]
fn mistakes_are_named_when_the_run_is_configured() {
    let files = |_: &str| -> Result<Vec<u8>, String> { Ok(b"a,b\n1,2\n".to_vec()) };
    let parse = |d: &[&str]| {
        let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
        Vars::parse(&d, &files).map(|_| ()).unwrap_err()
    };
    assert!(parse(&["x"]).contains("NAME=SPEC"));
    assert!(parse(&["x=int:5..1"]).contains("empty"));
    assert!(parse(&["x=int:1..5:zipf:0"]).contains("zipf"));
    assert!(parse(&["x=int:1..5:poisson"]).contains("distribution"));
    assert!(parse(&["x=str:0"]).contains("str length"));
    assert!(parse(&["x=seq", "x=seq"]).contains("twice"));
    assert!(parse(&["x-y=seq"]).contains("letters"));
    assert!(parse(&["x=csv:f:sometimes"]).contains("order"));
    let many: Vec<String> = (0..=MAX_VARS).map(|i| format!("v{i}=seq")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(parse(&many).contains("at most"));
    let v = Vars::parse(&["t=csv:f".to_string(), "n=seq".into()], &files).unwrap();
    assert!(Template::compile("{{nope}}", &v)
        .unwrap_err()
        .contains("no variable"));
    assert!(Template::compile("{{t}}", &v)
        .unwrap_err()
        .contains("name a column"));
    assert!(Template::compile("{{t.c}}", &v)
        .unwrap_err()
        .contains("no column"));
    assert!(Template::compile("{{n.c}}", &v)
        .unwrap_err()
        .contains("no columns"));
    assert!(Template::compile("{{n", &v).is_err());
    assert!(Template::compile("plain", &v).unwrap().is_fixed());
}

#[test]
fn integers_are_written_in_decimal_across_the_range() {
    for n in [0i64, 7, -7, 10, 99, 100, 123_456_789, i64::MAX, i64::MIN] {
        let mut out = b"x".to_vec();
        push_int(&mut out, n);
        assert_eq!(out, format!("x{n}").into_bytes());
    }
}

proptest::proptest! {
    /// Any text compiles or is refused, never panics; text without `{{`
    /// renders to itself.
    #[test]
    fn templates_compile_or_refuse_and_literals_render_as_written(text in ".{0,60}") {
        let v = vars(&["n=seq", "s=str:3"]);
        let _ = Template::compile(&text, &v);
        if !text.contains("{{") {
            let t = Template::compile(&text, &v).unwrap();
            let mut out = Vec::new();
            t.render(&v, &mut Draws::new(&v, 1), &mut out);
            proptest::prop_assert_eq!(out, text.as_bytes());
            proptest::prop_assert!(t.is_fixed());
        }
    }
}
