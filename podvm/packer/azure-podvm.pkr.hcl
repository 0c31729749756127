# Azure pod VM image (packer 1.6, azure-arm): a Gen2 Debian 12 VM runs provision.sh, packer captures
# a managed image and a snapshot of its OS disk, and azure-publish.sh turns the snapshot into an
# image version of a gallery image definition with SecurityType=ConfidentialVmSupported (the
# builder of packer 1.6 knows no security types). See podvm/README.md.

# ---- credentials: from the environment, never written here ----
variable "subscription_id" {
  type    = string
  default = env("ARM_SUBSCRIPTION_ID")
  validation {
    condition     = length(var.subscription_id) > 0
    error_message = "The subscription_id value must be set (or ARM_SUBSCRIPTION_ID)."
  }
}
variable "client_id" {
  type    = string
  default = env("ARM_CLIENT_ID")
}
variable "client_secret" {
  type      = string
  default   = env("ARM_CLIENT_SECRET")
  sensitive = true
}
variable "tenant_id" {
  type    = string
  default = env("ARM_TENANT_ID")
}
variable "use_azure_cli_auth" {
  type        = bool
  default     = false
  description = "Authenticate with the Azure CLI's login (az login) instead of a service principal."
}

# ---- where ----
variable "location" {
  type        = string
  description = "Region of the build VM and of the image, e.g. eastus (AZURE_REGION)."
}
variable "resource_group" {
  type        = string
  description = "Existing resource group of the managed image, the snapshot and the gallery (AZURE_RESOURCE_GROUP)."
}
variable "build_resource_group" {
  type        = string
  default     = ""
  description = "Existing resource group for the temporary build VM; empty: packer creates one in location."
}
variable "vm_size" {
  type        = string
  default     = "Standard_D2as_v5"
  description = "Size of the build VM (any Gen2-capable size; the build VM need not be confidential)."
}

# ---- base image: Debian 12, Generation 2 ----
variable "base_publisher" {
  type    = string
  default = "Debian"
}
variable "base_offer" {
  type    = string
  default = "debian-12"
}
variable "base_sku" {
  type    = string
  default = "12-gen2"
}
variable "base_version" {
  type    = string
  default = "latest"
}

# ---- result ----
variable "image_name" {
  type    = string
  default = "peerpod-podvm"
}
variable "image_version" {
  type        = string
  default     = "0.1.0"
  description = "Gallery image version (MAJOR.MINOR.PATCH)."
  validation {
    condition     = regex_replace(var.image_version, "^[0-9]+[.][0-9]+[.][0-9]+$", "") == ""
    error_message = "The image_version value must look like 1.2.3."
  }
}
variable "gallery_name" {
  type        = string
  description = "Existing Azure Compute Gallery in resource_group."
}
variable "image_definition" {
  type        = string
  default     = "peerpod-podvm-debian12-cvm"
  description = "Existing image definition: Linux, Generalized, HyperV V2, SecurityType=ConfidentialVmSupported."
}
variable "replication_regions" {
  type    = list(string)
  default = []
}
variable "publish_gallery" {
  type        = bool
  default     = true
  description = "Create the gallery image version (needs the az CLI, logged in); false: managed image and snapshot only."
}

# ---- inputs of the recipe ----
variable "forwarder" {
  type    = string
  default = ""
}
variable "process_user_data" {
  type    = string
  default = ""
}
variable "attestation_client" {
  type    = string
  default = ""
}
variable "kata_agent" {
  type        = string
  default     = ""
  description = "Path to a kata-agent binary (checked when building, not when validating)."
}
variable "kata_agent_args" {
  type    = string
  default = "--config /etc/kata-agent.toml"
}
variable "kata_agent_config" {
  type    = string
  default = ""
}

locals {
  bin                = "${path.root}/../../build/bin"
  forwarder          = var.forwarder != "" ? var.forwarder : "${local.bin}/agent-protocol-forwarder"
  process_user_data  = var.process_user_data != "" ? var.process_user_data : "${local.bin}/process-user-data"
  attestation_client = var.attestation_client != "" ? var.attestation_client : "${local.bin}/attestation-client"
  # Never empty, so that validation passes without it; check-inputs.sh stops the build instead.
  kata_agent        = var.kata_agent != "" ? var.kata_agent : "kata_agent-is-not-set"
  kata_agent_config = var.kata_agent_config != "" ? var.kata_agent_config : "${path.root}/files/kata-agent.toml"
  managed_image     = "${var.image_name}-${var.image_version}"
  snapshot          = regex_replace("${var.image_name}_${var.image_version}_osdisk", "[^A-Za-z0-9_]", "_")
  stage             = "/tmp/peerpod-stage"
}

source "azure-arm" "podvm" {
  subscription_id    = var.subscription_id
  client_id          = var.client_id
  client_secret      = var.client_secret
  tenant_id          = var.tenant_id
  use_azure_cli_auth = var.use_azure_cli_auth

  location                  = var.build_resource_group == "" ? var.location : ""
  build_resource_group_name = var.build_resource_group
  vm_size                   = var.vm_size

  os_type         = "Linux"
  image_publisher = var.base_publisher
  image_offer     = var.base_offer
  image_sku       = var.base_sku
  image_version   = var.base_version

  # Captured from a Gen2 VM, the managed image is Gen2 as well; the OS disk snapshot is what the
  # gallery version is made from.
  managed_image_name                  = local.managed_image
  managed_image_resource_group_name   = var.resource_group
  managed_image_os_disk_snapshot_name = local.snapshot

  azure_tags = {
    purpose       = "peerpod-podvm"
    image_version = var.image_version
  }
}

build {
  sources = ["source.azure-arm.podvm"]

  provisioner "shell-local" {
    inline = ["${path.root}/check-inputs.sh '${local.forwarder}' '${local.process_user_data}' '${var.kata_agent}' '${local.attestation_client}'"]
  }
  provisioner "shell" {
    inline = ["mkdir -p ${local.stage}/bin ${local.stage}/files"]
  }
  provisioner "file" {
    source      = local.forwarder
    destination = "${local.stage}/bin/agent-protocol-forwarder"
    generated   = true
  }
  provisioner "file" {
    source      = local.process_user_data
    destination = "${local.stage}/bin/process-user-data"
    generated   = true
  }
  provisioner "file" {
    source      = local.attestation_client
    destination = "${local.stage}/bin/attestation-client"
    generated   = true
  }
  provisioner "file" {
    source      = local.kata_agent
    destination = "${local.stage}/bin/kata-agent"
    generated   = true
  }
  provisioner "file" {
    source      = local.kata_agent_config
    destination = "${local.stage}/kata-agent.toml"
    generated   = true
  }
  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "${local.stage}/files"
  }
  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["PP_CLOUD=azure", "PP_STAGE=${local.stage}", "KATA_AGENT_ARGS=${var.kata_agent_args}", "PP_IMAGE_ID=azure/${local.managed_image}"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }} install"
  }
  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["PP_CLOUD=azure", "PP_STAGE=${local.stage}"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }} cleanup"
    skip_clean       = true
  }

  post-processor "shell-local" {
    environment_vars = [
      "PUBLISH=${var.publish_gallery}",
      "SUBSCRIPTION=${var.subscription_id}",
      "RESOURCE_GROUP=${var.resource_group}",
      "LOCATION=${var.location}",
      "GALLERY=${var.gallery_name}",
      "IMAGE_DEFINITION=${var.image_definition}",
      "IMAGE_VERSION=${var.image_version}",
      "SNAPSHOT=${local.snapshot}",
      "REPLICATION_REGIONS=${join(" ", var.replication_regions)}",
    ]
    script = "${path.root}/azure-publish.sh"
  }
}
