"""The console's words in French and Arabic, and locale formatting of money and times.

One message table (key -> {"fr", "ar"}): every string a template shows comes from here, so
a missing translation is caught by a test instead of showing a key. Money is formatted from
integer centimes with Babel (``Decimal``, never a float).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency

LANGS = ("fr", "ar")
DEFAULT_LANG = "fr"
RTL = frozenset({"ar"})
LOCALES = {"fr": "fr_MA", "ar": "ar_MA"}

MESSAGES: dict[str, dict[str, str]] = {
    "app_title": {"fr": "Console du CAC", "ar": "لوحة تحكم المركز"},
    "lang_name": {"fr": "Français", "ar": "العربية"},
    "nav_grid": {"fr": "Postes", "ar": "الحواسيب"},
    "nav_vouchers": {"fr": "Tickets", "ar": "التذاكر"},
    "nav_report": {"fr": "Clôture", "ar": "إغلاق اليوم"},
    "nav_tariff": {"fr": "Tarif", "ar": "التعريفة"},
    "nav_operators": {"fr": "Opérateurs", "ar": "المشغلون"},
    "nav_audit": {"fr": "Journal", "ar": "سجل العمليات"},
    "logout": {"fr": "Se déconnecter", "ar": "تسجيل الخروج"},
    "logged_in_as": {"fr": "Connecté :", "ar": "المستخدم:"},
    "role_operator": {"fr": "opérateur", "ar": "مشغل"},
    "role_manager": {"fr": "gérant", "ar": "مسير"},
    # login
    "login_title": {"fr": "Connexion", "ar": "تسجيل الدخول"},
    "name": {"fr": "Nom", "ar": "الاسم"},
    "password": {"fr": "Mot de passe", "ar": "كلمة المرور"},
    "login_button": {"fr": "Se connecter", "ar": "دخول"},
    "err_bad_credentials": {"fr": "Nom ou mot de passe incorrect.",
                            "ar": "الاسم أو كلمة المرور غير صحيحة."},
    "err_locked_out": {"fr": "Trop d'échecs de connexion : réessayez dans {minutes} min.",
                       "ar": "محاولات فاشلة كثيرة: أعد المحاولة بعد {minutes} دقيقة."},
    "session_expired": {"fr": "Votre session a expiré : reconnectez-vous.",
                        "ar": "انتهت الجلسة: سجل الدخول من جديد."},
    "logged_out": {"fr": "Vous êtes déconnecté.", "ar": "تم تسجيل الخروج."},
    # grid
    "grid_title": {"fr": "Postes", "ar": "الحواسيب"},
    "live_on": {"fr": "en direct", "ar": "مباشر"},
    "live_off": {"fr": "hors ligne : rechargez la page", "ar": "غير متصل: أعد تحميل الصفحة"},
    "station": {"fr": "Poste", "ar": "الحاسوب"},
    "state_free": {"fr": "Libre", "ar": "متاح"},
    "state_session": {"fr": "En session", "ar": "قيد الاستعمال"},
    "state_locked": {"fr": "Verrouillé", "ar": "مقفل"},
    "state_offline": {"fr": "Hors ligne", "ar": "غير متصل"},
    "time_left": {"fr": "Temps restant", "ar": "الوقت المتبقي"},
    "open_ended": {"fr": "sans limite", "ar": "بدون حد"},
    "fee_so_far": {"fr": "À payer", "ar": "المبلغ حتى الآن"},
    "paid_by_voucher": {"fr": "payé par ticket", "ar": "مدفوع بتذكرة"},
    "paid_by_cash": {"fr": "paiement au comptoir", "ar": "دفع عند الشباك"},
    "category": {"fr": "Catégorie", "ar": "الفئة"},
    "no_category": {"fr": "aucune", "ar": "بدون"},
    "minutes": {"fr": "Minutes", "ar": "دقائق"},
    "start_fixed": {"fr": "Démarrer", "ar": "ابدأ"},
    "start_open": {"fr": "Démarrer sans limite", "ar": "ابدأ بدون حد"},
    # the anonymous visit profile (CONTRACT §9b): one row of big buttons each, skippable
    "impact_legend": {"fr": "Pour nos statistiques (facultatif, anonyme)",
                      "ar": "لإحصائياتنا (اختياري، بدون اسم)"},
    "impact_skip": {"fr": "Passer", "ar": "تخطي"},
    "impact_purpose": {"fr": "Motif", "ar": "الغرض"},
    "impact_age_band": {"fr": "Âge", "ar": "السن"},
    "impact_gender": {"fr": "Genre", "ar": "الجنس"},
    "impact_purpose_egov": {"fr": "Démarche administrative", "ar": "إجراء إداري"},
    "impact_purpose_job": {"fr": "Emploi", "ar": "شغل"},
    "impact_purpose_school": {"fr": "École, études", "ar": "دراسة"},
    "impact_purpose_business": {"fr": "Entreprise, commerce", "ar": "مقاولة، تجارة"},
    "impact_purpose_training": {"fr": "Formation", "ar": "تكوين"},
    "impact_purpose_other": {"fr": "Autre", "ar": "آخر"},
    "impact_age_band_<18": {"fr": "moins de 18", "ar": "أقل من 18"},
    "impact_age_band_18-24": {"fr": "18-24", "ar": "18-24"},
    "impact_age_band_25-34": {"fr": "25-34", "ar": "25-34"},
    "impact_age_band_35-54": {"fr": "35-54", "ar": "35-54"},
    "impact_age_band_55+": {"fr": "55 et plus", "ar": "55 فما فوق"},
    "impact_gender_f": {"fr": "Femme", "ar": "امرأة"},
    "impact_gender_m": {"fr": "Homme", "ar": "رجل"},
    "impact_gender_x": {"fr": "Ne se prononce pas", "ar": "بدون تحديد"},
    "extend": {"fr": "Prolonger", "ar": "مدّد"},
    "end": {"fr": "Terminer", "ar": "أنهِ"},
    "lock": {"fr": "Verrouiller", "ar": "أقفل"},
    "unlock": {"fr": "Déverrouiller", "ar": "افتح القفل"},
    "reason": {"fr": "Motif", "ar": "السبب"},
    "message": {"fr": "Message", "ar": "رسالة"},
    "send": {"fr": "Envoyer", "ar": "أرسل"},
    "seconds": {"fr": "Durée (s)", "ar": "المدة (ثانية)"},
    "message_all": {"fr": "Message à tous les postes", "ar": "رسالة إلى كل الحواسيب"},
    "current_message": {"fr": "Message affiché", "ar": "الرسالة المعروضة"},
    "locked_by": {"fr": "Verrouillé par", "ar": "أقفله"},
    "ok_started": {"fr": "Session démarrée sur {station}.", "ar": "بدأت الجلسة على {station}."},
    "ok_extended": {"fr": "Session prolongée sur {station}.", "ar": "مُددت الجلسة على {station}."},
    "ok_ended": {"fr": "Session terminée sur {station} : {fee} à encaisser.",
                 "ar": "انتهت الجلسة على {station}: المبلغ المستحق {fee}."},
    "ok_locked": {"fr": "{station} verrouillé.", "ar": "تم قفل {station}."},
    "ok_unlocked": {"fr": "{station} déverrouillé.", "ar": "تم فتح {station}."},
    "ok_message": {"fr": "Message envoyé.", "ar": "أُرسلت الرسالة."},
    # pause, resume, move (CONTRACT §7)
    "pause": {"fr": "Pause", "ar": "إيقاف مؤقت"},
    "resume": {"fr": "Reprendre", "ar": "استئناف"},
    "move": {"fr": "Déplacer vers", "ar": "انقل إلى"},
    "paused": {"fr": "En pause", "ar": "متوقفة مؤقتًا"},
    "pause_all": {"fr": "Tout mettre en pause", "ar": "إيقاف الكل مؤقتًا"},
    "resume_all": {"fr": "Tout reprendre", "ar": "استئناف الكل"},
    "power_title": {"fr": "Coupure de courant ou de liaison",
                    "ar": "انقطاع الكهرباء أو الاتصال"},
    "ok_paused": {"fr": "Session en pause sur {station} : le temps ne compte plus.",
                  "ar": "أُوقفت الجلسة مؤقتًا على {station}: لم يعد الوقت يُحتسب."},
    "ok_resumed": {"fr": "Session reprise sur {station}.", "ar": "استؤنفت الجلسة على {station}."},
    "ok_moved": {"fr": "Session déplacée de {station} vers {target}.",
                 "ar": "نُقلت الجلسة من {station} إلى {target}."},
    "ok_paused_all": {"fr": "{count} session(s) en pause.", "ar": "أُوقفت {count} جلسة مؤقتًا."},
    "ok_resumed_all": {"fr": "{count} session(s) reprise(s).", "ar": "استؤنفت {count} جلسة."},
    "err_session_paused": {"fr": "Cette session est déjà en pause.",
                           "ar": "هذه الجلسة متوقفة مؤقتًا."},
    "err_session_running": {"fr": "Cette session n'est pas en pause.",
                            "ar": "هذه الجلسة ليست متوقفة."},
    # vouchers
    "vouchers_title": {"fr": "Tickets de temps", "ar": "تذاكر الوقت"},
    "sell": {"fr": "Vendre", "ar": "بيع"},
    "count": {"fr": "Nombre", "ar": "العدد"},
    "sell_title": {"fr": "Vendre des tickets", "ar": "بيع تذاكر"},
    "lookup_title": {"fr": "Consulter un ticket", "ar": "البحث عن تذكرة"},
    "code": {"fr": "Code", "ar": "الرمز"},
    "lookup": {"fr": "Consulter", "ar": "ابحث"},
    "price": {"fr": "Prix", "ar": "الثمن"},
    "balance": {"fr": "Solde", "ar": "الرصيد"},
    "expires": {"fr": "Expire le", "ar": "ينتهي في"},
    "sold_at": {"fr": "Vendu le", "ar": "بيع في"},
    "status": {"fr": "État", "ar": "الحالة"},
    "v_valid": {"fr": "valide", "ar": "صالحة"},
    "v_void": {"fr": "annulé", "ar": "ملغاة"},
    "v_expired": {"fr": "expiré", "ar": "منتهية"},
    "v_in_use": {"fr": "en cours", "ar": "قيد الاستعمال"},
    "v_empty": {"fr": "épuisé", "ar": "مستنفدة"},
    "void": {"fr": "Annuler", "ar": "ألغِ"},
    "print_ticket": {"fr": "Ticket", "ar": "التذكرة"},
    "print": {"fr": "Imprimer", "ar": "اطبع"},
    "back": {"fr": "Retour", "ar": "رجوع"},
    "ticket_heading": {"fr": "Ticket d'accès Internet", "ar": "تذكرة الولوج إلى الإنترنت"},
    "ticket_hint": {"fr": "Tapez ce code sur l'écran du poste.",
                    "ar": "أدخل هذا الرمز في شاشة الحاسوب."},
    "recent_vouchers": {"fr": "Tickets récents", "ar": "التذاكر الأخيرة"},
    "none": {"fr": "Aucun.", "ar": "لا شيء."},
    "ok_sold": {"fr": "{count} ticket(s) vendu(s).", "ar": "تم بيع {count} تذكرة."},
    "ok_voided": {"fr": "Ticket {code} annulé.", "ar": "أُلغيت التذكرة {code}."},
    "min_unit": {"fr": "min", "ar": "دقيقة"},
    # day close
    "report_title": {"fr": "Clôture de caisse", "ar": "إغلاق الصندوق"},
    "day": {"fr": "Jour", "ar": "اليوم"},
    "shift_from": {"fr": "Début", "ar": "من"},
    "shift_to": {"fr": "Fin", "ar": "إلى"},
    "show": {"fr": "Afficher", "ar": "اعرض"},
    "download_csv": {"fr": "Télécharger (CSV)", "ar": "تنزيل (CSV)"},
    "period": {"fr": "Période", "ar": "الفترة"},
    "r_sessions": {"fr": "Sessions", "ar": "الجلسات"},
    "r_cash_sessions": {"fr": "Sessions payées au comptoir", "ar": "جلسات مدفوعة عند الشباك"},
    "r_voucher_sessions": {"fr": "Sessions sur ticket", "ar": "جلسات بتذكرة"},
    "r_vouchers_sold": {"fr": "Tickets vendus", "ar": "التذاكر المباعة"},
    "r_voids": {"fr": "Annulations", "ar": "الإلغاءات"},
    "r_gross": {"fr": "Recettes brutes, temps et tickets",
                "ar": "المداخيل الإجمالية، الوقت والتذاكر"},
    "r_net": {"fr": "Net, temps et tickets", "ar": "الصافي، الوقت والتذاكر"},
    "r_item": {"fr": "Rubrique", "ar": "البند"},
    "r_amount": {"fr": "Montant", "ar": "المبلغ"},
    "r_by_tariff": {"fr": "Par tarif", "ar": "حسب التعريفة"},
    "r_by_category": {"fr": "Par catégorie", "ar": "حسب الفئة"},
    "r_by_operator": {"fr": "Par opérateur", "ar": "حسب المشغل"},
    "r_voucher_kiosk": {"fr": "(ticket au poste)", "ar": "(تذكرة في الحاسوب)"},
    "r_records": {"fr": "Écritures du registre", "ar": "قيود السجل"},
    "r_void_list": {"fr": "Détail des annulations", "ar": "تفاصيل الإلغاءات"},
    "tariff_version": {"fr": "Version", "ar": "النسخة"},
    "operator": {"fr": "Opérateur", "ar": "المشغل"},
    "at": {"fr": "Heure", "ar": "الوقت"},
    # tariff
    "tariff_title": {"fr": "Tarif", "ar": "التعريفة"},
    "tariff_note": {"fr": "Le nouveau tarif s'applique aux nouvelles sessions et aux "
                          "nouveaux tickets ; les sessions en cours gardent le leur. "
                          "Les prix sont en centimes.",
                    "ar": "تطبق التعريفة الجديدة على الجلسات والتذاكر الجديدة فقط؛ "
                          "الجلسات الجارية تحتفظ بتعريفتها. الأثمنة بالسنتيم."},
    "currency": {"fr": "Devise", "ar": "العملة"},
    "block_minutes": {"fr": "Durée d'un bloc (min)", "ar": "مدة الوحدة (دقيقة)"},
    "block_price": {"fr": "Prix d'un bloc (centimes)", "ar": "ثمن الوحدة (سنتيم)"},
    "minimum_blocks": {"fr": "Blocs minimum", "ar": "أدنى عدد من الوحدات"},
    "grace_seconds": {"fr": "Gratuit en dessous de (s)", "ar": "مجاني أقل من (ثانية)"},
    "bands": {"fr": "Plages horaires", "ar": "الفترات الزمنية"},
    "band_from": {"fr": "De (HH:MM)", "ar": "من (HH:MM)"},
    "band_to": {"fr": "À (HH:MM)", "ar": "إلى (HH:MM)"},
    "concessions": {"fr": "Réductions (%)", "ar": "التخفيضات (%)"},
    "percent": {"fr": "Pourcentage", "ar": "النسبة"},
    "save": {"fr": "Enregistrer", "ar": "احفظ"},
    "ok_tariff": {"fr": "Tarif version {version} enregistré.",
                  "ar": "تم حفظ التعريفة، النسخة {version}."},
    "empty_row_hint": {"fr": "Laissez une ligne vide pour la supprimer.",
                       "ar": "اترك السطر فارغا لحذفه."},
    # operators
    "operators_title": {"fr": "Opérateurs", "ar": "المشغلون"},
    "role": {"fr": "Rôle", "ar": "الدور"},
    "active": {"fr": "Actif", "ar": "نشط"},
    "yes": {"fr": "oui", "ar": "نعم"},
    "no": {"fr": "non", "ar": "لا"},
    "deactivate": {"fr": "Désactiver", "ar": "عطّل"},
    "activate": {"fr": "Réactiver", "ar": "فعّل"},
    "change_role": {"fr": "Changer le rôle", "ar": "غيّر الدور"},
    "add_operator": {"fr": "Ajouter ou remplacer un compte", "ar": "إضافة حساب أو تعويضه"},
    "updated_at": {"fr": "Modifié le", "ar": "آخر تعديل"},
    "ok_operator": {"fr": "Compte {name} enregistré.", "ar": "تم حفظ الحساب {name}."},
    # audit
    "audit_title": {"fr": "Journal des opérations", "ar": "سجل العمليات"},
    "actor": {"fr": "Qui", "ar": "من"},
    "action": {"fr": "Action", "ar": "العملية"},
    "target": {"fr": "Objet", "ar": "الهدف"},
    "details": {"fr": "Détails", "ar": "التفاصيل"},
    # errors
    "error": {"fr": "Erreur", "ar": "خطأ"},
    "err_csrf": {"fr": "Formulaire expiré ou falsifié : rechargez la page et recommencez.",
                 "ar": "النموذج منتهي أو مزور: أعد تحميل الصفحة وحاول من جديد."},
    "err_forbidden": {"fr": "Réservé au gérant.", "ar": "خاص بالمسير."},
    "err_not_found": {"fr": "Page introuvable.", "ar": "الصفحة غير موجودة."},
    "err_station_busy": {"fr": "Ce poste a déjà une session.", "ar": "هذا الحاسوب مشغول."},
    "err_station_locked": {"fr": "Ce poste est verrouillé : déverrouillez-le d'abord.",
                           "ar": "هذا الحاسوب مقفل: افتحه أولا."},
    "err_session_changed": {"fr": "La session de ce poste a changé : vérifiez et recommencez.",
                            "ar": "تغيرت جلسة هذا الحاسوب: تحقق وأعد المحاولة."},
    "err_no_session": {"fr": "Ce poste n'a pas de session.", "ar": "لا توجد جلسة على هذا الحاسوب."},
    "err_bad_minutes": {"fr": "Nombre de minutes invalide (1 à 1440).",
                        "ar": "عدد الدقائق غير صالح (من 1 إلى 1440)."},
    "err_bad_count": {"fr": "Nombre de tickets invalide (1 à 50).",
                      "ar": "عدد التذاكر غير صالح (من 1 إلى 50)."},
    "err_reason_required": {"fr": "Indiquez un motif.", "ar": "اذكر السبب."},
    "err_bad_date": {"fr": "Date ou heure invalide.", "ar": "تاريخ أو وقت غير صالح."},
    "err_other": {"fr": "Refusé : {message}", "ar": "مرفوض: {message}"},
    # the till (issue 17)
    "r_till_revenue": {"fr": "Recette du jour, caisse comprise", "ar": "مداخيل اليوم، مع الصندوق"},
    "nav_catalogue": {"fr": "Catalogue", "ar": "الكتالوج"},
    "catalogue_title": {"fr": "Catalogue de la caisse", "ar": "كتالوج الصندوق"},
    "catalogue_note": {"fr": "Prix en dirhams par unité (1,50 ou 1.50). Une ligne vide est "
                             "ignorée ; une modification du fichier agent.toml l'emporte "
                             "ensuite.",
                       "ar": "الأثمنة بالدرهم للوحدة (1,50 أو 1.50). السطر الفارغ يُتجاهل؛ "
                             "وتعديل ملف agent.toml لاحقا هو الذي يسري."},
    "item_id": {"fr": "Code", "ar": "الرمز"},
    "name_fr": {"fr": "Nom (français)", "ar": "الاسم (بالفرنسية)"},
    "name_ar": {"fr": "Nom (arabe)", "ar": "الاسم (بالعربية)"},
    "unit_price": {"fr": "Prix (MAD)", "ar": "الثمن (درهم)"},
    "unit": {"fr": "Unité", "ar": "الوحدة"},
    "ok_catalogue": {"fr": "Catalogue v{version} enregistré.",
                     "ar": "تم حفظ الكتالوج النسخة {version}."},
    "nav_print": {"fr": "Impressions", "ar": "الطباعة"},
    "print_title": {"fr": "Impressions en attente", "ar": "طباعات في الانتظار"},
    "pages": {"fr": "Pages", "ar": "الصفحات"},
    "colour": {"fr": "Couleur", "ar": "الألوان"},
    "colour_yes": {"fr": "couleur", "ar": "بالألوان"},
    "colour_no": {"fr": "noir et blanc", "ar": "أبيض وأسود"},
    "release": {"fr": "Libérer (encaisser)", "ar": "أطلق (استخلص)"},
    "cancel_job": {"fr": "Annuler", "ar": "ألغِ"},
    "no_print_jobs": {"fr": "Aucune impression en attente.", "ar": "لا توجد طباعة في الانتظار."},
    "print_not_configured": {"fr": "L'impression n'est pas configurée ([printing] cups).",
                             "ar": "الطباعة غير مهيأة ([printing] cups)."},
    "print_down": {"fr": "Le serveur d'impression ne répond pas ; la caisse fonctionne. "
                         "({message})",
                   "ar": "خادم الطباعة لا يجيب؛ الصندوق يعمل. ({message})"},
    "ok_print_released": {"fr": "{pages} page(s) libérée(s), {amount}.",
                          "ar": "تم إطلاق {pages} صفحة، {amount}."},
    "ok_print_cancelled": {"fr": "Impression annulée, rien encaissé.",
                           "ar": "أُلغيت الطباعة، لم يُستخلص شيء."},
    "err_unknown_print_job": {"fr": "Cette impression n'existe plus (déjà libérée ou annulée).",
                              "ar": "هذه الطباعة لم تعد موجودة (أُطلقت أو أُلغيت)."},
    "nav_till": {"fr": "Caisse", "ar": "الصندوق"},
    "nav_shift": {"fr": "Service", "ar": "الوردية"},
    "till_title": {"fr": "Vente au comptoir", "ar": "البيع في الشباك"},
    "quantity": {"fr": "Quantité", "ar": "الكمية"},
    "on_bill_of": {"fr": "Sur la note de", "ar": "على حساب"},
    "cash_now": {"fr": "Paiement comptant", "ar": "أداء نقدي"},
    "unit_page": {"fr": "la page", "ar": "للصفحة"},
    "unit_item": {"fr": "l'unité", "ar": "للوحدة"},
    "unit_hour": {"fr": "l'heure", "ar": "للساعة"},
    "unit_seat": {"fr": "la place", "ar": "للمقعد"},
    "receipt": {"fr": "Reçu", "ar": "وصل"},
    "amount": {"fr": "Montant", "ar": "المبلغ"},
    "item": {"fr": "Article", "ar": "المادة"},
    "sales_today": {"fr": "Ventes du jour", "ar": "مبيعات اليوم"},
    "voided": {"fr": "annulée", "ar": "ملغاة"},
    "no_catalogue": {"fr": "Le catalogue est vide : un gérant le remplit dans agent.toml "
                           "([[catalogue]]) ou par l'API.",
                     "ar": "الكتالوج فارغ: يملؤه المسير في agent.toml ([[catalogue]]) أو عبر "
                           "الواجهة البرمجية."},
    "no_shift_open": {"fr": "Aucun service ouvert.", "ar": "لا توجد وردية مفتوحة."},
    "ok_sale": {"fr": "Vente enregistrée.", "ar": "تم تسجيل البيع."},
    "ok_sale_voided": {"fr": "Vente annulée.", "ar": "تم إلغاء البيع."},
    "shift_title": {"fr": "Service de caisse", "ar": "وردية الصندوق"},
    "open_shift": {"fr": "Ouvrir le service", "ar": "فتح الوردية"},
    "opening_float": {"fr": "Fond de caisse (MAD)", "ar": "رصيد الافتتاح (درهم)"},
    "opened_by": {"fr": "Ouvert par", "ar": "فتحها"},
    "opened_at": {"fr": "Ouvert à", "ar": "فتحت في"},
    "cash_in": {"fr": "Encaissé", "ar": "المقبوض"},
    "cash_voids": {"fr": "Remboursé", "ar": "المسترجع"},
    "expected_cash": {"fr": "Caisse attendue", "ar": "المبلغ المنتظر"},
    "count_cash": {"fr": "Compter la caisse", "ar": "عد النقود"},
    "pieces": {"fr": "nombre", "ar": "العدد"},
    "counted_cash": {"fr": "Compté", "ar": "المعدود"},
    "over_short": {"fr": "Écart", "ar": "الفرق"},
    "close_shift": {"fr": "Clôturer le service", "ar": "إغلاق الوردية"},
    "shift_closed": {"fr": "Service clôturé", "ar": "وردية مغلقة"},
    "ok_shift_open": {"fr": "Service ouvert.", "ar": "تم فتح الوردية."},
    "ok_shift_closed": {"fr": "Service clôturé.", "ar": "تم إغلاق الوردية."},
    "err_no_open_shift": {"fr": "Aucun service ouvert : ouvrez la caisse d'abord.",
                          "ar": "لا توجد وردية مفتوحة: افتح الصندوق أولا."},
    "err_shift_open": {"fr": "Un service est déjà ouvert.", "ar": "هناك وردية مفتوحة بالفعل."},
    "err_unknown_item": {"fr": "Article inconnu.", "ar": "مادة غير معروفة."},
    "err_bad_quantity": {"fr": "Quantité invalide (1 à 10000).",
                         "ar": "كمية غير صالحة (من 1 إلى 10000)."},
    "err_cannot_void": {"fr": "Déjà annulé.", "ar": "ملغى من قبل."},
}


def translate(lang: str, key: str, **kw: object) -> str:
    entry = MESSAGES.get(key)
    text = key if entry is None else entry.get(lang) or entry[DEFAULT_LANG]
    return text.format(**kw) if kw else text


@dataclass(frozen=True)
class Locale:
    """What a page needs to speak one language: words, direction, money and time formats."""

    lang: str
    tz: ZoneInfo

    @property
    def dir(self) -> str:
        return "rtl" if self.lang in RTL else "ltr"

    def t(self, key: str, **kw: object) -> str:
        return translate(self.lang, key, **kw)

    def money(self, centimes: int, currency: str) -> str:
        return format_currency(Decimal(int(centimes)).scaleb(-2), currency,
                               locale=LOCALES[self.lang])

    def when(self, at: datetime | str | None, fmt: str = "short") -> str:
        if at is None or at == "":
            return ""
        dt = datetime.fromisoformat(at) if isinstance(at, str) else at
        return format_datetime(dt, fmt, tzinfo=self.tz, locale=LOCALES[self.lang])

    def duration(self, seconds: int | None) -> str:
        """``h:mm:ss`` / ``mm:ss`` (digits are the same in both languages)."""
        if seconds is None:
            return self.t("open_ended")
        seconds = max(0, int(seconds))
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def pick_lang(value: str | None) -> str:
    return value if value in LANGS else DEFAULT_LANG
