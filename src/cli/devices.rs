//! `pingce devices`: every adapter wgpu sees and the one `--device` / `--backend` select.

use anyhow::Result;
use clap::Args;
use pingce::device::select::{list_adapters, select_adapter, AdapterSummary};

use super::DeviceArgs;

#[derive(Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: DevicesArgs) -> Result<()> {
    let opts = a.device.options();
    let adapters: Vec<AdapterSummary> = list_adapters(&opts)?.iter().enumerate().map(|(i, ad)| AdapterSummary::from_adapter(i, ad)).collect();
    let selected = select_adapter(&opts);
    if a.json {
        let sel = selected.as_ref().ok().map(|(ad, note)| serde_json::json!({"name": ad.get_info().name, "note": note}));
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"adapters": adapters, "selected": sel}))?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!("no adapters found on the requested backends");
    }
    for s in &adapters {
        println!("[{}] {} ({}, {})", s.index, s.name, s.backend, s.device_type);
        println!("    driver: {} {}", s.driver, s.driver_info);
        println!(
            "    largest storage binding {} MiB, largest buffer {} MiB, workgroup memory {} KiB, {} invocations per workgroup",
            s.max_storage_binding_mib, s.max_buffer_mib, s.max_workgroup_storage_kib, s.max_invocations_per_workgroup
        );
        println!("    shader-f16: {}, subgroups: {}, timestamps: {}", yes(s.shader_f16), yes(s.subgroups), yes(s.timestamps));
    }
    match selected {
        Ok((ad, note)) => {
            let info = ad.get_info();
            println!("selected: {} ({:?})", info.name, info.backend);
            if let Some(n) = note {
                println!("note: {n}");
            }
        }
        Err(e) => println!("selected: none ({e:#})"),
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
