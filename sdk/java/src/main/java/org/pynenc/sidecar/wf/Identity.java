package org.pynenc.sidecar.wf;

import pynenc.sidecar.v1.Common.WorkflowIdentity;

/**
 * Identity of a workflow: its id is the invocation id of its main task; the type (the main
 * task's id) is needed only to start one.
 */
public record Identity(String workflowId, String workflowType, String parentWorkflowId) {
  public Identity {
    workflowId = workflowId == null ? "" : workflowId;
    workflowType = workflowType == null ? "" : workflowType;
    parentWorkflowId = parentWorkflowId == null ? "" : parentWorkflowId;
  }

  public static Identity of(String workflowId) {
    return new Identity(workflowId, "", "");
  }

  public WorkflowIdentity toProto() {
    return WorkflowIdentity.newBuilder()
        .setWorkflowId(workflowId)
        .setWorkflowType(workflowType)
        .setParentWorkflowId(parentWorkflowId)
        .build();
  }

  public static Identity fromProto(WorkflowIdentity p) {
    return new Identity(p.getWorkflowId(), p.getWorkflowType(), p.getParentWorkflowId());
  }
}
