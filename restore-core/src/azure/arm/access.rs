//! Access to restored VMs: the VMAccess extension (password or SSH key reset).

use reqwest::Method;
use serde_json::{Value, json};

use super::{ArmCloud, VmCredential, api, bad, path};
use crate::exec::{CallError, CallErrorKind, CallResult};

impl ArmCloud {
    /// Installs the VMAccess extension on a VM to set `username`'s
    /// credential. The secret goes only into the extension's
    /// `protectedSettings` (encrypted by Azure, never returned).
    pub(super) async fn vm_access(
        &self,
        resource_group: &str,
        vm: &str,
        username: &str,
    ) -> CallResult<()> {
        let op = format!("reset access of '{username}' on VM '{vm}'");
        let source = self.vm_credentials.as_ref().ok_or_else(|| {
            bad(
                &op,
                "no VM credential source: give the ARM cloud one (with_vm_credentials)",
            )
        })?;
        let credential = source
            .credential(vm, username)
            .await
            .map_err(|e| CallError::new(CallErrorKind::Fatal, &op, e.to_string()))?;
        let id = self.vm_id(resource_group, vm)?;
        let v = self.call(Method::GET, &id, api::VM, None, &op).await?;
        let location = v.get("location").cloned().unwrap_or(Value::Null);
        let os = v
            .pointer("/properties/storageProfile/osDisk/osType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let properties = match (os, &credential) {
            ("Linux", VmCredential::Password(p)) => json!({
                "publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux",
                "typeHandlerVersion": "1.5", "autoUpgradeMinorVersion": true,
                "protectedSettings": { "username": username, "password": p }
            }),
            ("Linux", VmCredential::SshPublicKey(k)) => json!({
                "publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux",
                "typeHandlerVersion": "1.5", "autoUpgradeMinorVersion": true,
                "protectedSettings": { "username": username, "ssh_key": k }
            }),
            ("Windows", VmCredential::Password(p)) => json!({
                "publisher": "Microsoft.Compute", "type": "VMAccessAgent",
                "typeHandlerVersion": "2.4", "autoUpgradeMinorVersion": true,
                "settings": { "UserName": username },
                "protectedSettings": { "Password": p }
            }),
            ("Windows", VmCredential::SshPublicKey(_)) => {
                return Err(bad(&op, "a Windows VM takes a password, not an SSH key"));
            }
            (other, _) => {
                return Err(bad(
                    &op,
                    format!("the VM's OS type is {other:?}, not Linux or Windows"),
                ));
            }
        };
        let body = json!({ "location": location, "properties": properties });
        self.call(
            Method::PUT,
            &path::child(&id, &["extensions", "enablevmaccess"])?,
            api::VM,
            Some(&body),
            &op,
        )
        .await
        .map(drop)
    }
}
