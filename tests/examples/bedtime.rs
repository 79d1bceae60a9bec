use std::time::Instant;
fn main() {
    for _ in 0..3 {
        let t = Instant::now();
        let bed = trafficjam_testbed::Testbed::build().unwrap();
        let b = t.elapsed();
        let l = bed.listen().unwrap();
        let bl = t.elapsed();
        drop(l);
        drop(bed);
        println!("build {:?} +listen {:?} +drop {:?}", b, bl, t.elapsed());
    }
}
