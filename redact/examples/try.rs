use recorder_redact::{Config, Policy};
fn main() {
    let p = Policy::new(&Config::default()).unwrap();
    let input = std::env::args()
        .nth(1)
        .unwrap()
        .replace("\\n", "\n")
        .replace("\\r", "\r");
    let out = p.redact_buffer(input.as_bytes());
    println!("{}", String::from_utf8_lossy(&out.bytes));
    for r in out.redactions {
        println!("{} {} {}", r.rule, r.offset, r.length);
    }
}
