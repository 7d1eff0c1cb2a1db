// A closure is not a resource: the message says how to make one.
use awith::{both, resource};

fn main() {
    let conn = resource(|| async { Ok::<_, std::io::Error>(1) }, |_, _| async { Ok(()) });
    let _ = both::<std::io::Error, _, _>(|| 1, conn);
}
