mod restore;
mod restore_util;
