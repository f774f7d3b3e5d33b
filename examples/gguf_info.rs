//! Prints a GGUF file's metadata (arrays summarised) and tensor types.
fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("usage: gguf_info FILE");
    let g = pingce::model::gguf::Gguf::open(std::path::Path::new(&path))?;
    let mut keys: Vec<_> = g.metadata.keys().collect();
    keys.sort();
    for k in keys {
        match &g.metadata[k] {
            pingce::model::gguf::Value::Array(a) => println!("{k}: array of {} (first: {:?})", a.len(), a.iter().take(3).collect::<Vec<_>>()),
            v => println!("{k}: {v:?}"),
        }
    }
    let mut types = std::collections::BTreeMap::new();
    for (n, t) in &g.tensors {
        types.entry(format!("{:?}/{}", t.dtype, t.ggml_type)).or_insert_with(Vec::new).push(n.clone());
    }
    for (t, ns) in types {
        println!("{t}: {} tensors, e.g. {:?}", ns.len(), ns.iter().take(4).collect::<Vec<_>>());
    }
    println!("{:?}", g.config()?);
    Ok(())
}
