/** What an alert is (SPEC section 7), apart from the store that keeps them and the sinks that send them. */

export type AlertType =
  | 'ShareCapacity'
  | 'ShareConnectivity'
  | 'SharePath'
  | 'ShareAuthentication'
  | 'BackupGeneral'
  | 'CertificateExpiring'
  | 'BackupOverdue';

export const shareAlertTypes: readonly AlertType[] = ['ShareCapacity', 'ShareConnectivity', 'SharePath', 'ShareAuthentication'];

export interface Alert {
  Id: string;
  AlertType: AlertType;
  Severity: 'Critical' | 'Warning';
  Title: string;
  Description: string;
  Remediation: string[];
  Status: 'Active' | 'Closed';
  FirstSeen: string;
  LastSeen: string;
  ClosedTime: string | null;
  BackupName: string | null;
  /**
   * Why the last sending of it to a sink (command, webhook) failed; null once one succeeds; absent
   * while none was made (no sink then, or the process that raised it died before sending).
   */
  DeliveryError?: string | null;
}

/**
 * Whether the alert reached its sinks, as Get-BackupAlert shows it: DeliveryError alone shows null
 * both for a sending that succeeded and for none made, and only the first is "delivered".
 */
export function deliveryStatus(alert: Alert): 'Delivered' | 'Failed' | 'NotSent' {
  if (alert.DeliveryError === undefined) return 'NotSent';
  return alert.DeliveryError === null ? 'Delivered' : 'Failed';
}
