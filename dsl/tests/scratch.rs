#[test]
fn scratch() {
    let src = std::fs::read_to_string("../examples/ddos_guard.nf").unwrap();
    let (f, d) = nfcc_dsl::parse::parse(&src);
    println!("{}", nfcc_dsl::diag::render("ddos_guard.nf", &src, &d));
    println!("{:#?}", f.policies[0].rules[3]);
    println!("{:#?}", f.policies[0].tests[1]);
    assert!(d.is_empty());
}
