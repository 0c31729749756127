# AWS pod VM image (packer 1.6, amazon-ebs): a Debian 12 instance on an AMD type that supports
# SEV-SNP runs provision.sh and becomes an AMI with ENA. The AMI inherits the boot mode of the
# source AMI (packer 1.6 has no boot_mode); aws-check-ami.sh checks it is uefi or uefi-preferred,
# which SEV-SNP needs. See podvm/README.md. Credentials: the AWS SDK chain (AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, an instance role), never this file.

variable "region" {
  type        = string
  description = "Build region, one with SEV-SNP instance types (e.g. us-east-2, eu-west-1) (AWS_REGION)."
}
variable "instance_type" {
  type        = string
  default     = "m6a.large"
  description = "Build instance type; an AmdSevSnp-capable family (m6a, c6a, r6a) so the AMI is tried on one."
}
variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty: the default VPC."
}
variable "associate_public_ip_address" {
  type    = bool
  default = true
}
variable "source_ami_name" {
  type    = string
  default = "debian-12-amd64-*"
}
variable "source_ami_owner" {
  type        = string
  default     = "136693071363"
  description = "The Debian cloud team's AWS account."
}
variable "ssh_username" {
  type    = string
  default = "admin"
}
variable "ami_name" {
  type    = string
  default = "peerpod-podvm-debian12"
}
variable "image_version" {
  type    = string
  default = "0.1.0"
}
variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Other regions to copy the AMI to."
}
variable "manifest" {
  type        = string
  default     = ""
  description = "Where packer writes the build manifest; empty: build/podvm/aws-manifest.json."
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
  manifest          = var.manifest != "" ? var.manifest : "${path.root}/../../build/podvm/aws-manifest.json"
  ami_name          = "${var.ami_name}-${var.image_version}"
  stage             = "/tmp/peerpod-stage"
}

source "amazon-ebs" "podvm" {
  region                      = var.region
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  associate_public_ip_address = var.associate_public_ip_address
  ssh_username                = var.ssh_username

  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }

  ami_name    = local.ami_name
  ami_regions = var.ami_regions
  ena_support = true
  tags = {
    Name          = local.ami_name
    purpose       = "peerpod-podvm"
    image_version = var.image_version
  }
}

build {
  sources = ["source.amazon-ebs.podvm"]

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
    environment_vars = ["PP_CLOUD=aws", "PP_STAGE=${local.stage}", "KATA_AGENT_ARGS=${var.kata_agent_args}", "PP_IMAGE_ID=aws/${local.ami_name}"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }} install"
  }
  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["PP_CLOUD=aws", "PP_STAGE=${local.stage}"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }} cleanup"
    skip_clean       = true
  }

  post-processors {
    post-processor "manifest" {
      output = local.manifest
    }
    post-processor "shell-local" {
      environment_vars = ["MANIFEST=${local.manifest}", "REGION=${var.region}"]
      script           = "${path.root}/aws-check-ami.sh"
    }
  }
}
