use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `checkhost ... | head` should end quietly like other CLI tools, not
    // panic on a closed stdout: restore the default SIGPIPE action.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = checkhost::cli::Cli::parse();
    checkhost::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(checkhost::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Errors can quote plugin text: keep it from driving the terminal.
            eprintln!(
                "error: {}",
                checkhost::cli::output::inert(&format!("{e:#}"))
            );
            ExitCode::from(2)
        }
    }
}
