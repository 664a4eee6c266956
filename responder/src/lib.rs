//! Host response agent: connects out to the gateway and executes signed mitigations under
//! guard rails. Not implemented yet; this crate reserves its place in the workspace.
